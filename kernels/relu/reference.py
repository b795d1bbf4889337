"""ReLU in plain NumPy (or CuPy): the readable definition. See __init__.py."""

from __future__ import annotations

from .. import array_module


def relu_forward(x, out=None):
    """y = max(x, 0), written into `out` if given (out=x works in place)."""
    return array_module(x).maximum(x, 0, out=out)


def relu_backward(dy, y):
    """dx = dy where y > 0, else 0."""
    return array_module(dy).where(y > 0, dy, 0).astype(dy.dtype, copy=False)
