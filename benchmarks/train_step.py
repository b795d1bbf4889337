"""One PSPNet training iteration, minipsp against PyTorch (CPU) in the same run.

    python -m benchmarks.train_step                          # PSPNet-50, batch 2, 97 x 97 crops
    python -m benchmarks.train_step --layers 18 --crop 129 --batch 4

An iteration is what the trainer does: forward, main + 0.4 x aux cross entropy, backward, and an
SGD step (momentum 0.9, weight decay 1e-4, backbone at lr, ppm/cls/aux at 10 x lr). Both models
start from the same weights (minipsp's, copied into torch) and see the same batch; the answers are
compared first (loss, and the weights after one step), then both are timed (median of --repeats,
after one untimed warm-up that also compiles the Numba kernels). Dropout is off so the two losses
can be compared; it costs little either way.

The timed steps alternate, minipsp then torch, --repeats times, and the medians are compared (on a
machine shared with other jobs, a burst of load then hits both alike). It also prints the conv
algorithm each 3x3 layer used (kernels/conv2d/algorithm.py; MINIPSP_CONV forces one) and, with
--memory, each framework's peak memory over a step: the rise of the peak resident set size (VmHWM)
above the resident size after building the model and batch, each measured in its own process.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import subprocess
import sys

import numpy as np
import torch

import minipsp
from benchmarks.common import interleaved_times, machine_line, max_abs_error
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


def conv_algorithms(model, x, y):
    """{(C_in, C_out, kernel, stride, dilation, map side, algorithm): how many convs}, from one forward."""
    from minipsp.kernels.conv2d import algorithm, cpu

    seen = collections.Counter()
    forward = cpu.conv2d_forward

    def recording(x, weight, bias, stride, padding, dilation):
        chosen = algorithm.choose(x.shape, weight.shape, stride, padding, dilation)
        seen[(weight.shape[1], weight.shape[0], weight.shape[2], stride[0], dilation[0], x.shape[2],
              "/".join(dict.fromkeys(chosen)))] += 1
        return forward(x, weight, bias, stride, padding, dilation)

    cpu.conv2d_forward = recording
    try:
        with minipsp.no_grad():
            model(minipsp.tensor(x), minipsp.tensor(y))
    finally:
        cpu.conv2d_forward = forward
    return seen


def _memory_kb(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def peak_memory_child(framework, args):
    """In this process: build, then two steps of `framework`; print the peak RSS rise in MB."""
    ours, theirs, x, y = build(args.layers, args.classes, args.crop, args.batch)
    model = ours if framework == "minipsp" else theirs
    model.train()
    step = (minipsp_step if framework == "minipsp" else torch_step)(model, x, y)
    del ours, theirs
    baseline = _memory_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:   # reset VmHWM to the current RSS
        clear.write("5")
    step()
    step()
    print((_memory_kb("VmHWM") - baseline) / 1024)


def peak_memory(framework, args):
    """Peak RSS rise (MB) of a training step of `framework`, measured in a fresh process."""
    command = [sys.executable, "-m", "benchmarks.train_step", "--memory-child", framework,
               "--layers", str(args.layers), "--classes", str(args.classes), "--crop", str(args.crop),
               "--batch", str(args.batch)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return float(output.split()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=50)
    parser.add_argument("--classes", type=int, default=150)
    parser.add_argument("--crop", type=int, default=97, help="(crop - 1) %% 8 == 0")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory", action="store_true", help="also each framework's peak memory (2 processes)")
    parser.add_argument("--memory-child", choices=["minipsp", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        return peak_memory_child(args.memory_child, args)

    ours, theirs, x, y = build(args.layers, args.classes, args.crop, args.batch)
    ours.train()
    theirs.train()
    step_ours, step_theirs = minipsp_step(ours, x, y), torch_step(theirs, x, y)
    loss_ours, loss_theirs = step_ours(), step_theirs()          # the warm-up step, also the check
    weight_error = max(max_abs_error(v, theirs.state_dict()[k].numpy()) for k, v in ours.state_dict().items()
                       if v.dtype.kind == "f")
    # interleaved: minipsp, torch, minipsp, ... (the warm-up was the step above)
    minipsp_times, torch_times = interleaved_times([step_ours, step_theirs], repeats=args.repeats, warmup=0)
    times = {"minipsp": minipsp_times, "torch": torch_times}
    t_ours, t_theirs = statistics.median(times["minipsp"]), statistics.median(times["torch"])

    print(f"PSPNet-{args.layers}, {args.classes} classes, batch {args.batch} x 3 x {args.crop} x {args.crop}, "
          f"{machine_line(torch.get_num_threads())}")
    print(f"first loss       minipsp {loss_ours:.6f}   torch {loss_theirs:.6f}   "
          f"|diff| {abs(loss_ours - loss_theirs):.2e}")
    print(f"weights after one SGD step: max |diff| {weight_error:.2e}")
    print(f"{'':16} {'s / iteration':>14}")
    print(f"{'minipsp':16} {t_ours:14.3f}")
    print(f"{'torch':16} {t_theirs:14.3f}")
    print(f"ratio minipsp / torch: {t_ours / t_theirs:.2f}x   (medians of {args.repeats} interleaved steps; "
          f"minipsp {' '.join(f'{t:.2f}' for t in times['minipsp'])}, torch "
          f"{' '.join(f'{t:.2f}' for t in times['torch'])})")
    if args.memory:
        mine, theirs_mb = peak_memory("minipsp", args), peak_memory("torch", args)
        print(f"peak memory of a step (RSS rise over the built model): minipsp {mine:.0f} MB, torch "
              f"{theirs_mb:.0f} MB, ratio {mine / theirs_mb:.2f}x")
    print("conv algorithms (C_in > C_out, kernel, stride, dilation, input side: algorithm x count):")
    for (c_in, c_out, kernel, stride, dilation, side, chosen), count in conv_algorithms(ours, x, y).items():
        print(f"  {c_in:5d} > {c_out:<5d} {kernel}x{kernel} s{stride} d{dilation} {side:4d} px: {chosen} x {count}")
    return t_ours / t_theirs


if __name__ == "__main__":
    main()
