"""ReLU in plain NumPy (or CuPy): the readable definition. See __init__.py."""

from __future__ import annotations


def _xp(a):
    if type(a).__module__.startswith("cupy"):
        import cupy

        return cupy
    import numpy

    return numpy


def relu_forward(x, out=None):
    """y = max(x, 0), written into `out` if given (out=x works in place)."""
    return _xp(x).maximum(x, 0, out=out)


def relu_backward(dy, y):
    """dx = dy where y > 0, else 0."""
    return _xp(dy).where(y > 0, dy, 0).astype(dy.dtype, copy=False)
