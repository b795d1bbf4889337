"""Pooling cases: PSPNet's pyramid (adaptive avg pool of a 60x60 map to 1, 2, 3, 6), adaptive max
to 6 (the paper's MAX ablation), and ResNet's stem max pool 3/2/1.

Each case runs forward + backward on the same float32 input and output gradient in minipsp and
in torch, and returns the forward output.
"""

from __future__ import annotations

import numpy as np

import minipsp
import minipsp.nn.functional as F
from benchmarks.common import Case


def _case(name, shape, ours, theirs, x, out_shape, device):
    import torch

    rng = np.random.default_rng(1)
    dy = rng.standard_normal(out_shape).astype(np.float32)
    xm = minipsp.tensor(x, requires_grad=True, device=device)
    dym = minipsp.tensor(dy, device=device)
    xt = torch.tensor(x, requires_grad=True, device=device)
    dyt = torch.tensor(dy, device=device)

    def run_minipsp():
        xm.grad = None
        y = ours(xm)
        y.backward(dym)
        return y.numpy()

    def run_torch():
        xt.grad = None
        y = theirs(xt)
        y.backward(dyt)
        return y.detach().cpu().numpy()

    return Case(name, shape, run_minipsp, run_torch)


def cases(device="cpu"):
    import torch.nn.functional as TF

    rng = np.random.default_rng(0)
    feature = rng.standard_normal((8, 512, 60, 60)).astype(np.float32)   # layer4 output of a 473 crop
    result = []
    for bins in (1, 2, 3, 6):
        result.append(_case(f"adaptive_avg_pool2d -> {bins}", f"8x512x60x60 -> {bins}x{bins}",
                            lambda t, b=bins: F.adaptive_avg_pool2d(t, b),
                            lambda t, b=bins: TF.adaptive_avg_pool2d(t, b),
                            feature, (8, 512, bins, bins), device))
    result.append(_case("adaptive_max_pool2d -> 6", "8x512x60x60 -> 6x6",
                        lambda t: F.adaptive_max_pool2d(t, 6), lambda t: TF.adaptive_max_pool2d(t, 6),
                        feature, (8, 512, 6, 6), device))
    stem = rng.standard_normal((8, 128, 128, 128)).astype(np.float32)     # after the deep stem's convs
    result.append(_case("max_pool2d 3/2/1", "8x128x128x128 -> 64x64",
                        lambda t: F.max_pool2d(t, 3, 2, 1), lambda t: TF.max_pool2d(t, 3, 2, 1),
                        stem, (8, 128, 64, 64), device))
    return result
