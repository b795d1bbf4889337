"""Dropout with Numba on the CPU: parallel loops applying a given mask. Same results as reference.py."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


def keep_scale(p):
    """1 / (1 - p), the factor that keeps the expectation; 0 when p == 1 (nothing is kept)."""
    return 1.0 / (1.0 - p) if p < 1 else 0.0


@njit(cache=True, parallel=True)
def _masked_scale_flat(x, mask, scale, y):
    for i in prange(x.size):
        y[i] = x[i] * mask[i] * scale


@njit(cache=True, parallel=True)
def _masked_scale_planes(x, mask, scale, y):
    """x, y (N, C, L); mask (N, C): one parallel iteration per (n, c) plane."""
    N, C, L = x.shape
    for j in prange(N * C):
        n, c = j // C, j % C
        s = mask[n, c] * scale
        for i in range(L):
            y[n, c, i] = x[n, c, i] * s


def dropout_forward(x, mask, p):
    """y = x * mask * scale; mask is a bool array of x's shape."""
    y = np.empty_like(x, order="C")
    scale = x.dtype.type(keep_scale(p))
    _masked_scale_flat(np.ascontiguousarray(x).reshape(-1), np.ascontiguousarray(mask).reshape(-1), scale,
                       y.reshape(-1))
    return y


def dropout_backward(dy, mask, p):
    """dx = dy * mask * scale: y is linear in x, so backward applies the same map to dy."""
    return dropout_forward(dy, mask, p)


def dropout2d_forward(x, mask, p):
    """y[n, c] = x[n, c] * mask[n, c] * scale; x (N, C, H, W), mask bool (N, C)."""
    N, C = x.shape[:2]
    y = np.empty((N, C, math.prod(x.shape[2:])), dtype=x.dtype)
    scale = x.dtype.type(keep_scale(p))
    _masked_scale_planes(np.ascontiguousarray(x).reshape(N, C, -1), np.ascontiguousarray(mask), scale, y)
    return y.reshape(x.shape)


def dropout2d_backward(dy, mask, p):
    """dx = dy * mask * scale, the same per-channel map as the forward."""
    return dropout2d_forward(dy, mask, p)
