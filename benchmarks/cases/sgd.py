"""SGD case: one optimiser step over PSPNet-50's parameters (49 M values, 161 tensors), as the trainer makes it.

Momentum 0.9, weight decay 1e-4, two groups (backbone at lr, head at 10 x lr), every parameter with
a gradient and a momentum buffer from an earlier step. Each call first puts the parameters and
buffers back to the same values (a copy, the same in both frameworks), so that every timed call
does the same work from the same state and the two results can be compared; returns the largest
parameter after the step.
"""

from __future__ import annotations

import numpy as np

import minipsp
from benchmarks.common import Case
from minipsp.models import PSPNet
from minipsp.optim import SGD


def cases(device="cpu"):
    import torch

    model = PSPNet(layers=50, classes=150)
    backbone, head = model.parameter_groups()
    rng = np.random.default_rng(0)
    ours = [[minipsp.tensor(p.data.copy(), requires_grad=True, device=device) for p in group]
            for group in (backbone, head)]
    del model, backbone, head
    theirs = [[torch.tensor(p.numpy(), requires_grad=True, device=device) for p in group] for group in ours]
    start = [p.data.copy() for group in ours for p in group]
    momentum = [rng.standard_normal(p.shape).astype(np.float32) for p in start]
    for group, torch_group in zip(ours, theirs):
        for p, tp in zip(group, torch_group):
            grad = rng.standard_normal(p.shape).astype(np.float32)
            p.grad = minipsp.tensor(grad, device=device)
            tp.grad = torch.tensor(grad, device=device)
    hyper = dict(lr=0.01, momentum=0.9, weight_decay=1e-4)
    optimizer = SGD([{"params": ours[0]}, {"params": ours[1], "lr": 0.1}], **hyper)
    torch_optimizer = torch.optim.SGD([{"params": theirs[0]}, {"params": theirs[1], "lr": 0.1}], **hyper)
    flat, torch_flat = [p for g in ours for p in g], [p for g in theirs for p in g]
    largest = int(np.argmax([p.size for p in start]))

    def run_minipsp():
        xp = minipsp.backend.get_array_module(flat[0].data)
        for p, value, buf in zip(flat, start, momentum):
            p.data[...] = xp.asarray(value)
            optimizer.state[id(p)] = {"momentum_buffer": xp.asarray(buf).copy()}
        optimizer.step()
        return minipsp.backend.to_numpy(flat[largest].data)

    def run_torch():
        with torch.no_grad():
            for p, value, buf in zip(torch_flat, start, momentum):
                p.copy_(torch.from_numpy(value))
                torch_optimizer.state[p] = {"momentum_buffer": torch.tensor(buf, device=p.device)}
        torch_optimizer.step()
        return torch_flat[largest].detach().cpu().numpy()

    return [Case("sgd step (PSPNet-50 parameters)", f"{sum(p.size for p in start) / 1e6:.1f} M values",
                 run_minipsp, run_torch)]
