"""Bilinear and nearest interpolation with Numba CUDA (see __init__ for the math).

Forward: one thread per output element, each gathering its (up to) 4 source pixels.
Backward: one thread per output gradient, scattering it to its 4 source pixels. Neighbouring
outputs share source pixels (upsampling x8, ~16 x 16 outputs feed each input pixel), so many
threads add into the same dx element at the same time; a plain `dx[i] += g` would lose updates
(read, add, write race), so every add is a `cuda.atomic.add`.

The source rows and weights come from the reference's helpers (computed in NumPy and copied to
the device), so the three variants sample exactly the same points. They depend only on the sizes,
so each set is computed and copied once and then kept (`_tables`): a copy from host memory on
every call would make the host wait for the GPU, several times per call, on the training hot path.
Under Numba's simulator (NUMBA_ENABLE_CUDASIM=1) the inputs are NumPy arrays and so are the outputs.
"""

from __future__ import annotations

import functools
import math

from numba import cuda

from .. import array_module
from .reference import bilinear_source, nearest_source

THREADS = 256


@cuda.jit
def _bilinear_forward_kernel(x, h0, h1, lh, w0, w1, lw, y):
    i = cuda.grid(1)
    P, OH, OW = y.shape
    if i >= P * OH * OW:
        return
    p, rest = i // (OH * OW), i % (OH * OW)
    oh, ow = rest // OW, rest % OW
    a, b = lh[oh], lw[ow]
    # Written as u + b * (v - u) rather than (1 - b) * u + b * v: the literal 1 is an integer, and
    # Numba would promote int - float32 to float64 (slow on most GPUs).
    x00, x01 = x[p, h0[oh], w0[ow]], x[p, h0[oh], w1[ow]]
    x10, x11 = x[p, h1[oh], w0[ow]], x[p, h1[oh], w1[ow]]
    upper = x00 + b * (x01 - x00)
    lower = x10 + b * (x11 - x10)
    y[p, oh, ow] = upper + a * (lower - upper)


@cuda.jit
def _bilinear_backward_kernel(dy, h0, h1, lh, w0, w1, lw, dx):
    i = cuda.grid(1)
    P, OH, OW = dy.shape
    if i >= P * OH * OW:
        return
    p, rest = i // (OH * OW), i % (OH * OW)
    oh, ow = rest // OW, rest % OW
    a, b = lh[oh], lw[ow]
    g_bottom = dy[p, oh, ow] * a            # the share of rows h1 and h0 (no int literal: see forward)
    g_top = dy[p, oh, ow] - g_bottom
    cuda.atomic.add(dx, (p, h0[oh], w0[ow]), g_top - g_top * b)
    cuda.atomic.add(dx, (p, h0[oh], w1[ow]), g_top * b)
    cuda.atomic.add(dx, (p, h1[oh], w0[ow]), g_bottom - g_bottom * b)
    cuda.atomic.add(dx, (p, h1[oh], w1[ow]), g_bottom * b)


@cuda.jit
def _nearest_forward_kernel(x, ih, iw, y):
    i = cuda.grid(1)
    P, OH, OW = y.shape
    if i >= P * OH * OW:
        return
    p, rest = i // (OH * OW), i % (OH * OW)
    oh, ow = rest // OW, rest % OW
    y[p, oh, ow] = x[p, ih[oh], iw[ow]]


@cuda.jit
def _nearest_backward_kernel(dy, ih, iw, dx):
    i = cuda.grid(1)
    P, OH, OW = dy.shape
    if i >= P * OH * OW:
        return
    p, rest = i // (OH * OW), i % (OH * OW)
    oh, ow = rest // OW, rest % OW
    cuda.atomic.add(dx, (p, ih[oh], iw[ow]), dy[p, oh, ow])


def _scale(scales, axis):
    return None if scales is None else scales[axis]


def _blocks(count):
    return max(1, math.ceil(count / THREADS))


@functools.lru_cache(maxsize=128)
def _tables(xp, kind, H, W, OH, OW, align_corners, scale_h, scale_w, dtype):
    """The source tables of a resize (H, W) -> (OH, OW), on xp's device, computed once per arguments.

    bilinear: (h0, h1, lh, w0, w1, lw), rows as int64 and weights in `dtype`; nearest: (ih, iw).
    The kernels only read them, so one copy serves every call.
    """
    if kind == "nearest":
        return xp.asarray(nearest_source(H, OH, scale_h)), xp.asarray(nearest_source(W, OW, scale_w))
    h0, h1, lh = bilinear_source(H, OH, align_corners, scale_h)
    w0, w1, lw = bilinear_source(W, OW, align_corners, scale_w)
    return (xp.asarray(h0), xp.asarray(h1), xp.asarray(lh.astype(dtype)),
            xp.asarray(w0), xp.asarray(w1), xp.asarray(lw.astype(dtype)))


def _bilinear_tables(xp, H, W, OH, OW, align_corners, scales, dtype):
    return _tables(xp, "bilinear", int(H), int(W), int(OH), int(OW), bool(align_corners),
                   _scale(scales, 0), _scale(scales, 1), str(dtype))


def _nearest_tables(xp, H, W, OH, OW, scales):
    return _tables(xp, "nearest", int(H), int(W), int(OH), int(OW), None, _scale(scales, 0), _scale(scales, 1),
                   None)


def bilinear_forward(x, size, align_corners, scales=None):
    xp = array_module(x)
    N, C, H, W = x.shape
    OH, OW = size
    tables = _bilinear_tables(xp, H, W, OH, OW, align_corners, scales, x.dtype)
    y = xp.empty((N * C, OH, OW), dtype=x.dtype)
    planes = xp.ascontiguousarray(x).reshape(N * C, H, W)
    _bilinear_forward_kernel[_blocks(y.size), THREADS](planes, *tables, y)
    return y.reshape(N, C, OH, OW)


def bilinear_backward(dy, input_size, align_corners, scales=None):
    xp = array_module(dy)
    N, C, OH, OW = dy.shape
    H, W = input_size
    tables = _bilinear_tables(xp, H, W, OH, OW, align_corners, scales, dy.dtype)
    dx = xp.zeros((N * C, H, W), dtype=dy.dtype)
    planes = xp.ascontiguousarray(dy).reshape(N * C, OH, OW)
    _bilinear_backward_kernel[_blocks(planes.size), THREADS](planes, *tables, dx)
    return dx.reshape(N, C, H, W)


def nearest_forward(x, size, scales=None):
    xp = array_module(x)
    N, C, H, W = x.shape
    OH, OW = size
    ih, iw = _nearest_tables(xp, H, W, OH, OW, scales)
    y = xp.empty((N * C, OH, OW), dtype=x.dtype)
    _nearest_forward_kernel[_blocks(y.size), THREADS](xp.ascontiguousarray(x).reshape(N * C, H, W), ih, iw, y)
    return y.reshape(N, C, OH, OW)


def nearest_backward(dy, input_size, scales=None):
    xp = array_module(dy)
    N, C, OH, OW = dy.shape
    H, W = input_size
    ih, iw = _nearest_tables(xp, H, W, OH, OW, scales)
    dx = xp.zeros((N * C, H, W), dtype=dy.dtype)
    planes = xp.ascontiguousarray(dy).reshape(N * C, OH, OW)
    _nearest_backward_kernel[_blocks(planes.size), THREADS](planes, ih, iw, dx)
    return dx.reshape(N, C, H, W)
