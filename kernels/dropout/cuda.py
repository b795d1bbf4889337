"""Dropout with Numba CUDA on CuPy arrays: one thread per element. Same results as reference.py.

Under Numba's CUDA simulator the same kernels run on NumPy arrays, so the launchers allocate
their outputs with the input's own array module.
"""

from __future__ import annotations

import math

from numba import cuda

from .. import array_module

THREADS = 256


def keep_scale(p):
    """1 / (1 - p), the factor that keeps the expectation; 0 when p == 1 (nothing is kept)."""
    return 1.0 / (1.0 - p) if p < 1 else 0.0


@cuda.jit
def _masked_scale_kernel(x, mask, scale, y):
    i = cuda.grid(1)
    if i < x.size:
        y[i] = x[i] * mask[i] * scale


@cuda.jit
def _masked_scale_planes_kernel(x, mask, scale, y):
    """x, y (N, C, L); mask (N, C): thread k handles element k, whose plane picks the mask entry."""
    k = cuda.grid(1)
    N, C, L = x.shape
    if k < N * C * L:
        n, c, i = k // (C * L), (k // L) % C, k % L
        y[n, c, i] = x[n, c, i] * mask[n, c] * scale


def dropout_forward(x, mask, p):
    """y = x * mask * scale; mask is a bool array of x's shape."""
    xp = array_module(x)
    y = xp.empty_like(x, order="C")
    if x.size:
        scale = x.dtype.type(keep_scale(p))
        _masked_scale_kernel[math.ceil(x.size / THREADS), THREADS](
            xp.ascontiguousarray(x).reshape(-1), xp.ascontiguousarray(mask).reshape(-1), scale, y.reshape(-1)
        )
    return y


def dropout_backward(dy, mask, p):
    """dx = dy * mask * scale: y is linear in x, so backward applies the same map to dy."""
    return dropout_forward(dy, mask, p)


def dropout2d_forward(x, mask, p):
    """y[n, c] = x[n, c] * mask[n, c] * scale; x (N, C, H, W), mask bool (N, C)."""
    xp = array_module(x)
    N, C = x.shape[:2]
    y = xp.empty((N, C, math.prod(x.shape[2:])), dtype=x.dtype)
    if y.size:
        scale = x.dtype.type(keep_scale(p))
        _masked_scale_planes_kernel[math.ceil(y.size / THREADS), THREADS](
            xp.ascontiguousarray(x).reshape(N, C, -1), xp.ascontiguousarray(mask), scale, y
        )
    return y.reshape(x.shape)


def dropout2d_backward(dy, mask, p):
    """dx = dy * mask * scale, the same per-channel map as the forward."""
    return dropout2d_forward(dy, mask, p)
