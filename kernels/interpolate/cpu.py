"""Bilinear and nearest interpolation with Numba on the CPU (see __init__ for the math).

The source rows and weights come from the reference's helpers (tiny arrays, computed in NumPy);
the loops over pixels run in compiled code, in parallel over the N*C planes. Giving each plane to
one thread is what makes the backward scatter-add safe without atomics: two threads never add
into the same plane of dx.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .reference import bilinear_source, nearest_source


@njit(cache=True, parallel=True)
def _bilinear_forward(x, h0, h1, lh, w0, w1, lw, y):
    P, OH, OW = y.shape  # P = N*C planes
    for p in prange(P):
        for oh in range(OH):
            top, bottom, a = x[p, h0[oh]], x[p, h1[oh]], lh[oh]
            for ow in range(OW):
                b = lw[ow]
                # u + b * (v - u) == (1-b)*u + b*v, without an integer 1 (float32 stays float32)
                upper = top[w0[ow]] + b * (top[w1[ow]] - top[w0[ow]])
                lower = bottom[w0[ow]] + b * (bottom[w1[ow]] - bottom[w0[ow]])
                y[p, oh, ow] = upper + a * (lower - upper)


@njit(cache=True, parallel=True)
def _bilinear_backward(dy, h0, h1, lh, w0, w1, lw, dx):
    P, OH, OW = dy.shape
    for p in prange(P):
        for oh in range(OH):
            top, bottom, a = dx[p, h0[oh]], dx[p, h1[oh]], lh[oh]
            for ow in range(OW):
                b = lw[ow]
                # Split dy between rows h0 and h1 (weights 1-a and a), then each part between
                # columns w0 and w1 (1-b and b). g - g*b is (1-b)*g: written without the integer 1,
                # which Numba would promote (with a float32) to float64.
                g_bottom = dy[p, oh, ow] * a
                g_top = dy[p, oh, ow] - g_bottom
                top[w0[ow]] += g_top - g_top * b
                top[w1[ow]] += g_top * b
                bottom[w0[ow]] += g_bottom - g_bottom * b
                bottom[w1[ow]] += g_bottom * b


@njit(cache=True, parallel=True)
def _nearest_forward(x, ih, iw, y):
    P, OH, OW = y.shape
    for p in prange(P):
        for oh in range(OH):
            for ow in range(OW):
                y[p, oh, ow] = x[p, ih[oh], iw[ow]]


@njit(cache=True, parallel=True)
def _nearest_backward(dy, ih, iw, dx):
    P, OH, OW = dy.shape
    for p in prange(P):
        for oh in range(OH):
            for ow in range(OW):
                dx[p, ih[oh], iw[ow]] += dy[p, oh, ow]


def _scale(scales, axis):
    return None if scales is None else scales[axis]


def _planes(a):
    """(N,C,H,W) -> a contiguous (N*C, H, W) view (or copy)."""
    N, C, H, W = a.shape
    return np.ascontiguousarray(a).reshape(N * C, H, W)


def bilinear_forward(x, size, align_corners, scales=None):
    N, C, H, W = x.shape
    OH, OW = size
    h0, h1, lh = bilinear_source(H, OH, align_corners, _scale(scales, 0))
    w0, w1, lw = bilinear_source(W, OW, align_corners, _scale(scales, 1))
    y = np.empty((N * C, OH, OW), dtype=x.dtype)
    _bilinear_forward(_planes(x), h0, h1, lh.astype(x.dtype), w0, w1, lw.astype(x.dtype), y)
    return y.reshape(N, C, OH, OW)


def bilinear_backward(dy, input_size, align_corners, scales=None):
    N, C, OH, OW = dy.shape
    H, W = input_size
    h0, h1, lh = bilinear_source(H, OH, align_corners, _scale(scales, 0))
    w0, w1, lw = bilinear_source(W, OW, align_corners, _scale(scales, 1))
    dx = np.zeros((N * C, H, W), dtype=dy.dtype)
    _bilinear_backward(_planes(dy), h0, h1, lh.astype(dy.dtype), w0, w1, lw.astype(dy.dtype), dx)
    return dx.reshape(N, C, H, W)


def nearest_forward(x, size, scales=None):
    N, C, H, W = x.shape
    OH, OW = size
    ih = nearest_source(H, OH, _scale(scales, 0))
    iw = nearest_source(W, OW, _scale(scales, 1))
    y = np.empty((N * C, OH, OW), dtype=x.dtype)
    _nearest_forward(_planes(x), ih, iw, y)
    return y.reshape(N, C, OH, OW)


def nearest_backward(dy, input_size, scales=None):
    N, C, OH, OW = dy.shape
    H, W = input_size
    ih = nearest_source(H, OH, _scale(scales, 0))
    iw = nearest_source(W, OW, _scale(scales, 1))
    dx = np.zeros((N * C, H, W), dtype=dy.dtype)
    _nearest_backward(_planes(dy), ih, iw, dx)
    return dx.reshape(N, C, H, W)
