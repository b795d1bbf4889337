"""dropout and dropout2d: zero values (or whole channel maps) with probability p, scale the rest by 1/(1-p).

The mask is drawn here from minipsp's seeded generator (`minipsp.random.get_rng`), on the input's
device, so `minipsp.manual_seed(s)` makes it reproducible; the kernels (kernels/dropout) apply it.
At eval time (training=False) both are the identity and return the input itself, as in torch.
"""

from __future__ import annotations

import numpy as np

from minipsp import kernels
from minipsp.autograd.function import Function
from minipsp.backend import device_of, to_device
from minipsp.nn.functional.dtypes import check_float
from minipsp.random import get_rng

__all__ = ["dropout", "dropout2d"]


class Dropout(Function):
    """y = x * mask * scale with a given bool mask of x's shape; dx = dy * mask * scale."""

    @staticmethod
    def forward(ctx, x, mask, p):
        ctx.save_for_backward(mask)
        ctx.p = p
        return kernels.variant("dropout", x).dropout_forward(x, mask, p)

    @staticmethod
    def backward(ctx, dy):
        (mask,) = ctx.saved
        return kernels.variant("dropout", dy).dropout_backward(dy, mask, ctx.p), None, None


class Dropout2d(Function):
    """y[n, c] = x[n, c] * mask[n, c] * scale with a bool (N, C) mask; dx likewise from dy."""

    @staticmethod
    def forward(ctx, x, mask, p):
        ctx.save_for_backward(mask)
        ctx.p = p
        return kernels.variant("dropout", x).dropout2d_forward(x, mask, p)

    @staticmethod
    def backward(ctx, dy):
        (mask,) = ctx.saved
        return kernels.variant("dropout", dy).dropout2d_backward(dy, mask, ctx.p), None, None


def _check(op_name, input, p):
    from minipsp.tensor import Tensor

    if not isinstance(input, Tensor):
        raise TypeError(f"{op_name}: input must be a Tensor; got {type(input).__name__}")
    check_float(op_name, "input", input.dtype)
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0 <= p <= 1:
        raise ValueError(f"{op_name}: dropout probability p has to be between 0 and 1; got {p!r}")


def _keep_mask(shape, p, device):
    """A bool array of `shape`, True (keep) with probability 1 - p, from minipsp's seeded generator."""
    return get_rng(device).random(shape, dtype=np.float32) >= p


def dropout(input, p=0.5, training=True):
    """Zero each element with probability p and scale the others by 1/(1-p), as torch's dropout."""
    _check("dropout", input, p)
    if not training:
        return input
    mask = _keep_mask(input.shape, p, device_of(input.data))
    return Dropout.apply(input, mask, float(p))


def dropout2d(input, p=0.5, training=True):
    """Zero each whole channel map input[n, c] with probability p, scale the others by 1/(1-p).

    input: (N, C, H, W). Neighbouring pixels of a feature map are strongly correlated, so dropping
    single pixels barely regularises a conv net; dropping whole maps does (Tompson et al., 2015).
    """
    _check("dropout2d", input, p)
    if input.ndim != 4:
        raise ValueError(f"dropout2d: input must be 4-D (N, C, H, W); got shape {tuple(input.shape)}")
    if not training:
        return input
    # The (N, C) mask is tiny, so it is drawn on the CPU generator and moved: the same masks on CPU and
    # GPU, and a resumed GPU run draws exactly what the uninterrupted one did (get_rng_state saves the
    # CPU generator only).
    mask = to_device(_keep_mask(tuple(input.shape[:2]), p, "cpu"), device_of(input.data))
    return Dropout2d.apply(input, mask, float(p))
