"""Ops that move elements without changing them: reshape, transpose/permute, slicing, cat, stack.

Their backward moves the gradient back the same way: reshape it back, apply the inverse
permutation, scatter it into the sliced positions, split it between the concatenated inputs.
"""

from __future__ import annotations

import numbers

from minipsp.autograd.function import Function
from minipsp.backend import get_array_module


class Reshape(Function):
    """y = a viewed with another shape of the same size;  da = dy reshaped back."""

    @staticmethod
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        for n in shape:
            if isinstance(n, bool) or not isinstance(n, numbers.Integral):
                raise TypeError(f"reshape: shape must be ints; got {tuple(shape)!r}, which holds a {type(n).__name__}")
        if sum(n == -1 for n in shape) > 1 or any(n < -1 for n in shape):
            # NumPy reads any negative size as -1
            raise ValueError(f"reshape: shape {tuple(shape)} may hold one -1 (the size to infer) and no other "
                             "negative size")
        try:
            return a.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot view a tensor of shape {a.shape} ({a.size} elements) "
                             f"as shape {tuple(shape)}") from None

    @staticmethod
    def backward(ctx, dy):
        return dy.reshape(ctx.shape), None


class Permute(Function):
    """y = a with its axes reordered by `dims`;  da = dy with the inverse order."""

    @staticmethod
    def forward(ctx, a, dims):
        # a dim out of range wrapped round: permute(0, 5) of a 2-D tensor was permute(0, 1), silently
        if not all(isinstance(d, numbers.Integral) and -max(a.ndim, 1) <= d < max(a.ndim, 1) for d in dims) or \
                sorted(d % max(a.ndim, 1) for d in dims) != list(range(a.ndim)):
            raise ValueError(f"permute: dims {tuple(dims)} are not a permutation of the {a.ndim} axes "
                             f"of shape {a.shape}")
        dims = tuple(d % a.ndim for d in dims)
        ctx.inverse = tuple(sorted(range(len(dims)), key=lambda i: dims[i]))
        return a.transpose(dims)

    @staticmethod
    def backward(ctx, dy):
        return dy.transpose(ctx.inverse), None


class GetItem(Function):
    """y = a[index] (basic and advanced indexing);  da = zeros with dy added at the indexed places."""

    @staticmethod
    def forward(ctx, a, index):
        ctx.shape, ctx.dtype, ctx.index = a.shape, a.dtype, index
        try:
            return a[index]
        except IndexError as exc:
            raise IndexError(f"index {index!r} is out of range for a tensor of shape {a.shape}: {exc}") from None

    @staticmethod
    def backward(ctx, dy):
        xp = get_array_module(dy)
        da = xp.zeros(ctx.shape, dtype=dy.dtype)
        # add.at, not da[index] += dy: an index array may repeat a position, and each repeat counts.
        xp.add.at(da, ctx.index, dy)
        return da, None


class Cat(Function):
    """y = the inputs joined along `dim`;  each input's gradient is its slice of dy."""

    @staticmethod
    def forward(ctx, dim, *arrays):
        xp = get_array_module(arrays[0])
        ctx.dim = dim
        ctx.sizes = [a.shape[dim] for a in arrays]
        return xp.concatenate(arrays, axis=dim)

    @staticmethod
    def backward(ctx, dy):
        xp = get_array_module(dy)
        splits = list(_cumulative(ctx.sizes))[:-1]
        return (None, *xp.split(dy, splits, axis=ctx.dim))


class Stack(Function):
    """y = the inputs stacked along a new axis `dim`;  each input's gradient is dy[..., i, ...]."""

    @staticmethod
    def forward(ctx, dim, *arrays):
        xp = get_array_module(arrays[0])
        ctx.dim = dim
        return xp.stack(arrays, axis=dim)

    @staticmethod
    def backward(ctx, dy):
        xp = get_array_module(dy)
        return (None, *(xp.take(dy, i, axis=ctx.dim) for i in range(dy.shape[ctx.dim])))


def _cumulative(sizes):
    total = 0
    for size in sizes:
        total += size
        yield total
