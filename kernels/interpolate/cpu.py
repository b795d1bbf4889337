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


# Largest input side for which the backward goes through dense matrices (below). The scatter loop
# costs ~1 ns per dy pixel whatever the sizes; the two GEMMs cost 2*W + 2*H*W/OW flops per dy pixel.
# Measured 2026-12-02, 2 threads, PSPNet's final upsampling (8 x 150 x 17 x 17 -> 129 x 129): scatter
# 25.7 ms, dense 11.3 ms (torch's forward + backward 48.9 ms). At 64 the GEMMs do ~130 flops a pixel.
DENSE_MAX_SIDE = 64


def resize_matrix(source, in_size, dtype):
    """The (out_size, in_size) matrix of a 1-D bilinear resize: row o has 1 - lam[o] at column i0[o]
    and lam[o] at column i1[o] (summed where they are the same column), so y = R @ x along the axis."""
    i0, i1, lam = source
    matrix = np.zeros((len(i0), in_size))
    rows = np.arange(len(i0))
    np.add.at(matrix, (rows, i0), 1 - lam)
    np.add.at(matrix, (rows, i1), lam)
    return matrix.astype(dtype)


def bilinear_backward(dy, input_size, align_corners, scales=None):
    N, C, OH, OW = dy.shape
    H, W = input_size
    h0, h1, lh = bilinear_source(H, OH, align_corners, _scale(scales, 0))
    w0, w1, lw = bilinear_source(W, OW, align_corners, _scale(scales, 1))
    if max(H, W) <= DENSE_MAX_SIDE and dy.size > 0:
        # y = Rh x Rw^T per plane, so dx = Rh^T dy Rw: two GEMMs instead of a scatter-add per pixel
        Rh = resize_matrix((h0, h1, lh), H, dy.dtype)
        Rw = resize_matrix((w0, w1, lw), W, dy.dtype)
        rows = _planes(dy).reshape(N * C * OH, OW) @ Rw                       # N*C*OH, W
        return np.matmul(Rh.T, rows.reshape(N * C, OH, W)).reshape(N, C, H, W)
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
