"""Interpolation cases: PSPNet's bilinear upsampling of the logits, x8 with align_corners=True.

8x21x60x60 is a batch of 8 logit maps of a 473 crop with 21 classes (VOC) at output stride 8;
the second case is the exact size PSPNet asks for, (60 - 1) * 8 + 1 = 473. Each case runs
forward + backward on the same float32 input and output gradient in minipsp and in torch, and
returns the forward output.
"""

from __future__ import annotations

import numpy as np

import minipsp
import minipsp.nn.functional as F
from benchmarks.common import Case


def _case(name, shape, x, resize, device):
    import torch
    import torch.nn.functional as TF

    out = TF.interpolate(torch.tensor(x), mode="bilinear", align_corners=True, **resize).shape
    dy = np.random.default_rng(1).standard_normal(tuple(out)).astype(np.float32)
    xm, dym = minipsp.tensor(x, requires_grad=True, device=device), minipsp.tensor(dy, device=device)
    xt, dyt = torch.tensor(x, requires_grad=True, device=device), torch.tensor(dy, device=device)

    def run_minipsp():
        xm.grad = None
        y = F.interpolate(xm, mode="bilinear", align_corners=True, **resize)
        y.backward(dym)
        return y.numpy()

    def run_torch():
        xt.grad = None
        y = TF.interpolate(xt, mode="bilinear", align_corners=True, **resize)
        y.backward(dyt)
        return y.detach().cpu().numpy()

    return Case(name, shape, run_minipsp, run_torch)


def cases(device="cpu"):
    logits = np.random.default_rng(0).standard_normal((8, 21, 60, 60)).astype(np.float32)
    return [
        _case("bilinear x8 align_corners", "8x21x60x60 -> 480x480", logits, {"scale_factor": 8}, device),
        _case("bilinear to 473 align_corners", "8x21x60x60 -> 473x473", logits, {"size": (473, 473)}, device),
    ]
