"""One PSPNet training iteration, minipsp against PyTorch (CPU) in the same run.

    python -m benchmarks.train_step                          # PSPNet-50, batch 2, 97 x 97 crops
    python -m benchmarks.train_step --layers 18 --crop 129 --batch 4

An iteration is what the trainer does: forward, main + 0.4 x aux cross entropy, backward, and an
SGD step (momentum 0.9, weight decay 1e-4, backbone at lr, ppm/cls/aux at 10 x lr). Both models
start from the same weights (minipsp's, copied into torch) and see the same batch; the answers are
compared first (loss, and the weights after one step), then both are timed (median of --repeats,
after one untimed warm-up that also compiles the Numba kernels). Dropout is off so the two losses
can be compared; it costs little either way.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import minipsp
from benchmarks.common import machine_line, max_abs_error, median_time
from benchmarks.torch_pspnet import TorchPSPNet
from minipsp.models import PSPNet
from minipsp.optim import SGD


def build(layers, classes, crop, batch, seed=0):
    minipsp.manual_seed(seed)
    ours = PSPNet(layers=layers, classes=classes, dropout=0.0)
    theirs = TorchPSPNet(layers=layers, classes=classes, dropout=0.0)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, 3, crop, crop)).astype(np.float32)
    y = rng.integers(0, classes, (batch, crop, crop)).astype(np.int64)
    y[:, :3] = 255  # a few ignored pixels, as crops padded with 255 have
    return ours, theirs, x, y


def minipsp_step(model, x, y, lr=0.01, device="cpu"):
    backbone, head = model.parameter_groups()
    optimizer = SGD([{"params": backbone, "lr": lr}, {"params": head, "lr": 10 * lr}], lr=lr, momentum=0.9,
                    weight_decay=1e-4)
    xt, yt = minipsp.tensor(x).to(device), minipsp.tensor(y).to(device)

    def step():
        _, main, aux = model(xt, yt)
        loss = main + 0.4 * aux
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()
    return step


def torch_step(model, x, y, lr=0.01, device="cpu"):
    backbone = [p for name in ("layer0", "layer1", "layer2", "layer3", "layer4")
                for p in getattr(model, name).parameters()]
    head = [p for name in ("ppm", "cls", "aux") for p in getattr(model, name).parameters()]
    optimizer = torch.optim.SGD([{"params": backbone, "lr": lr}, {"params": head, "lr": 10 * lr}], lr=lr,
                                momentum=0.9, weight_decay=1e-4)
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)

    def step():
        _, main, aux = model(xt, yt)
        loss = main + 0.4 * aux
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()
    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=50)
    parser.add_argument("--classes", type=int, default=150)
    parser.add_argument("--crop", type=int, default=97, help="(crop - 1) %% 8 == 0")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    ours, theirs, x, y = build(args.layers, args.classes, args.crop, args.batch)
    ours.train()
    theirs.train()
    step_ours, step_theirs = minipsp_step(ours, x, y), torch_step(theirs, x, y)
    loss_ours, loss_theirs = step_ours(), step_theirs()          # the warm-up step, also the check
    weight_error = max(max_abs_error(v, theirs.state_dict()[k].numpy()) for k, v in ours.state_dict().items()
                       if v.dtype.kind == "f")
    t_ours = median_time(step_ours, repeats=args.repeats, warmup=0)
    t_theirs = median_time(step_theirs, repeats=args.repeats, warmup=0)

    print(f"PSPNet-{args.layers}, {args.classes} classes, batch {args.batch} x 3 x {args.crop} x {args.crop}, "
          f"{machine_line(torch.get_num_threads())}")
    print(f"first loss       minipsp {loss_ours:.6f}   torch {loss_theirs:.6f}   "
          f"|diff| {abs(loss_ours - loss_theirs):.2e}")
    print(f"weights after one SGD step: max |diff| {weight_error:.2e}")
    print(f"{'':16} {'s / iteration':>14}")
    print(f"{'minipsp':16} {t_ours:14.3f}")
    print(f"{'torch':16} {t_theirs:14.3f}")
    print(f"ratio minipsp / torch: {t_ours / t_theirs:.2f}x")
    return t_ours / t_theirs


if __name__ == "__main__":
    main()
