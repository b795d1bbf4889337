"""Whole-model speed: PSPNet-ResNet-18 and -50, minipsp against PyTorch (CPU), same weights, one run.

    python -m benchmarks.model                         # 2 x 3 x 129 x 129, ResNet-18 and -50
    python -m benchmarks.model --layers 18 --size 65 --batch 4 --repeats 3

Two rows per depth: a training forward + backward (main + 0.4 x aux cross entropy, batch
statistics, dropout off so the answers can be compared) and an evaluation forward (no graph).
Both models hold minipsp's randomly initialised weights (copied into torch) and see the same batch.
The error column is the loss difference (training) or the largest logit difference (eval).
The first call of each is excluded (Numba compiles then); the timed calls alternate, torch, minipsp,
torch, ... (medians of each), so that the machine's drift hits both alike.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import minipsp
from benchmarks.common import interleaved_medians, machine_line, max_abs_error
from benchmarks.torch_pspnet import TorchPSPNet
from minipsp.models import PSPNet


def build(layers, classes, size, batch, seed=0):
    minipsp.manual_seed(seed)
    ours = PSPNet(layers=layers, classes=classes, dropout=0.0)
    theirs = TorchPSPNet(layers=layers, classes=classes, dropout=0.0)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, 3, size, size)).astype(np.float32)
    y = rng.integers(0, classes, (batch, size, size)).astype(np.int64)
    return ours, theirs, x, y


def train_step(model, x, y):
    """forward + backward of main + 0.4 x aux; returns the total loss."""
    _, main, aux = model(x, y)
    loss = main + 0.4 * aux
    model.zero_grad()
    loss.backward()
    return loss.item()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, nargs="*", default=[18, 50])
    parser.add_argument("--size", type=int, default=129, help="crop side; (size - 1) %% 8 == 0")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--classes", type=int, default=21)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    print(f"PSPNet forward+backward and forward, batch {args.batch} x 3 x {args.size} x {args.size}, "
          f"{args.classes} classes, torch {torch.__version__}; {machine_line(torch.get_num_threads())}")
    header = f"{'model':12s} {'pass':18s} {'torch ms':>10s} {'minipsp ms':>11s} {'x torch':>8s} {'max|err|':>9s}"
    print(header)
    print("-" * len(header))
    for layers in args.layers:
        for row in bench(layers, args):
            print(row, flush=True)


def bench(layers, args):
    """Two table rows for PSPNet-`layers`: training forward+backward and evaluation forward."""
    ours, theirs, x, y = build(layers, args.classes, args.size, args.batch)
    xm, ym, xt, yt = minipsp.tensor(x), minipsp.tensor(y), torch.from_numpy(x), torch.from_numpy(y)
    rows = []

    ours.train()
    theirs.train()
    # Compare once before timing (each call also moves the BN running statistics, in both alike).
    error = abs(train_step(ours, xm, ym) - train_step(theirs, xt, yt))
    t_torch, t_ours = interleaved_medians([lambda: train_step(theirs, xt, yt), lambda: train_step(ours, xm, ym)],
                                          repeats=args.repeats)
    rows.append(f"PSPNet-{layers:<5d} {'train fwd+bwd':18s} {t_torch * 1e3:10.1f} {t_ours * 1e3:11.1f} "
                f"{t_ours / t_torch:8.2f} {error:9.2e}")

    ours.eval()
    theirs.eval()
    with torch.no_grad(), minipsp.no_grad():
        error = max_abs_error(ours(xm).numpy(), theirs(xt).numpy())
        t_torch, t_ours = interleaved_medians([lambda: theirs(xt), lambda: ours(xm)], repeats=args.repeats)
    rows.append(f"PSPNet-{layers:<5d} {'eval forward':18s} {t_torch * 1e3:10.1f} {t_ours * 1e3:11.1f} "
                f"{t_ours / t_torch:8.2f} {error:9.2e}")
    return rows

if __name__ == "__main__":
    main()
