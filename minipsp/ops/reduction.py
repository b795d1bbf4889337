"""Reductions: sum, mean and max over axes, with `keepdim` as in PyTorch.

The backward of a reduction spreads dy back over the reduced axes: re-insert them as size-1 axes
(if keepdim was False) and broadcast.
"""

from __future__ import annotations

import numbers

from minipsp.autograd.function import Function
from minipsp.backend import get_array_module


def normalize_dims(dim, ndim, op_name):
    """`dim` (None, an int or a tuple, negatives allowed) as a sorted tuple of axes."""
    if dim is None:
        return tuple(range(ndim))
    if not isinstance(dim, (numbers.Integral, tuple, list)):      # tuple(1.5): "'float' object is not iterable"
        raise TypeError(f"{op_name}: dim must be an int or a tuple of ints; got {type(dim).__name__} {dim!r}")
    dims = (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
    out = []
    for d in dims:
        if not isinstance(d, numbers.Integral) or not -max(ndim, 1) <= d < max(ndim, 1):
            raise ValueError(f"{op_name}: dim {d!r} is out of range for a tensor with {ndim} dimensions "
                             f"(expected an int in [{-ndim}, {ndim - 1}])")
        out.append(d % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{op_name}: dim {dim!r} repeats an axis")
    return tuple(sorted(out))


def expand_reduced(dy, axes, keepdim):
    """Re-insert the reduced axes of `dy` as size 1 so that it broadcasts against the input."""
    if keepdim or dy.ndim == 0 and not axes:
        return dy
    xp = get_array_module(dy)
    for axis in axes:
        dy = xp.expand_dims(dy, axis)
    return dy


class Sum(Function):
    """y = sum of a over `axes`;  da = dy broadcast back."""

    @staticmethod
    def forward(ctx, a, dim, keepdim):
        ctx.axes = normalize_dims(dim, a.ndim, "sum")
        ctx.keepdim, ctx.shape = keepdim, a.shape
        return a.sum(axis=ctx.axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx, dy):
        xp = get_array_module(dy)
        return xp.broadcast_to(expand_reduced(dy, ctx.axes, ctx.keepdim), ctx.shape).copy(), None, None


class Mean(Function):
    """y = mean of a over `axes`;  da = dy / (number of elements averaged), broadcast back."""

    @staticmethod
    def forward(ctx, a, dim, keepdim):
        ctx.axes = normalize_dims(dim, a.ndim, "mean")
        ctx.keepdim, ctx.shape = keepdim, a.shape
        count = 1
        for axis in ctx.axes:
            count *= a.shape[axis]
        ctx.count = count
        return a.mean(axis=ctx.axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx, dy):
        xp = get_array_module(dy)
        dy = expand_reduced(dy, ctx.axes, ctx.keepdim) / ctx.count
        return xp.broadcast_to(dy, ctx.shape).copy(), None, None


class Max(Function):
    """y = max of a over `axes`;  da = dy at the maximum, shared equally among ties (as torch.amax)."""

    @staticmethod
    def forward(ctx, a, dim, keepdim):
        axes = normalize_dims(dim, a.ndim, "max")
        if a.size == 0:
            raise ValueError(f"max: cannot reduce an empty tensor of shape {a.shape}")
        y = a.max(axis=axes, keepdims=True)
        ctx.axes, ctx.keepdim = axes, keepdim
        ctx.save_for_backward(a == y)
        return y if keepdim else y.squeeze(axis=axes) if axes else y

    @staticmethod
    def backward(ctx, dy):
        (is_max,) = ctx.saved
        dy = expand_reduced(dy, ctx.axes, ctx.keepdim)
        ties = is_max.sum(axis=ctx.axes, keepdims=True)
        return dy * is_max / ties, None, None
