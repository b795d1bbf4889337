"""Batch norm cases: the normalisation after every convolution of PSPNet.

8x256x64x64 float32 (a ResNet layer1 output, scaled down to a laptop), with weight and bias:
- training: batch statistics, running statistics updated in place, backward through the
  statistics (gradients of input, weight and bias);
- eval: running statistics, backward of an affine map (as when fine-tuning with frozen BN).
The same input, parameters, running statistics and output gradient in minipsp and in torch;
each case returns the forward output.
"""

from __future__ import annotations

import numpy as np

import minipsp
import minipsp.nn.functional as F
from benchmarks.common import Case


def _case(name, shape, training, device):
    import torch
    import torch.nn.functional as TF

    rng = np.random.default_rng(0)
    C = shape[1]
    x = rng.normal(0.5, 2.0, shape).astype(np.float32)
    weight, bias = rng.standard_normal(C).astype(np.float32), rng.standard_normal(C).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    ours = [minipsp.tensor(v, requires_grad=True, device=device) for v in (x, weight, bias)]
    theirs = [torch.tensor(v, requires_grad=True, device=device) for v in (x, weight, bias)]
    dy_ours, dy_theirs = minipsp.tensor(dy, device=device), torch.tensor(dy, device=device)
    stats_ours = [minipsp.tensor(np.zeros(C, np.float32), device=device),
                  minipsp.tensor(np.ones(C, np.float32), device=device)]
    stats_theirs = [torch.zeros(C, device=device), torch.ones(C, device=device)]

    def run_minipsp():
        for t in ours:
            t.grad = None
        y = F.batch_norm(ours[0], *stats_ours, ours[1], ours[2], training=training)
        y.backward(dy_ours)
        return y.numpy()

    def run_torch():
        for t in theirs:
            t.grad = None
        y = TF.batch_norm(theirs[0], *stats_theirs, theirs[1], theirs[2], training=training)
        y.backward(dy_theirs)
        return y.detach().cpu().numpy()

    return Case(name, "x".join(map(str, shape)), run_minipsp, run_torch)


def cases(device="cpu"):
    return [
        _case("batch_norm training", (8, 256, 64, 64), True, device),
        _case("batch_norm eval", (8, 256, 64, 64), False, device),
    ]
