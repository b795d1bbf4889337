"""Adaptive average and max pooling with Numba CUDA.

Forward (both): one thread per output element (p, i, j) computes its bin's edges inline,
start = i*H // OH and end = ((i+1)*H + OH - 1) // OH (the package's formula), and scans the bin.

Average backward: a gather, one thread per input pixel (p, h, w). The bins containing row h are
i = h*OH // H ... ceil((h+1)*OH / H) - 1 (usually one or two), so the thread sums
dy[p, i, j] / area(i, j) over those few bins and writes dx[p, h, w] once. No atomics, every
pixel written exactly once (no zero fill needed) and the result is deterministic. The scatter
alternative, one thread per bin adding to its pixels, would make a few threads (36 for 6x6) each
loop over ~100 pixels and need atomics where bins overlap.

Max backward: a scatter, one thread per output element, adding dy into its argmax with
`cuda.atomic.add`; overlapping bins may share a winner, so plain stores would race. Only
shared winners collide, so the atomics cost little (the order of their adds is not fixed).
Runs on CuPy arrays, and on NumPy arrays under the simulator (NUMBA_ENABLE_CUDASIM=1).
"""

import math

import numpy as np
from numba import cuda

from .. import array_module
from ..max_pool2d.cuda import max_pool2d_backward

THREADS = 128


def _blocks(total):
    """Blocks of THREADS threads covering `total` elements (at least one: a grid cannot be empty)."""
    return max((total + THREADS - 1) // THREADS, 1)


@cuda.jit
def _avg_forward_kernel(x, y):
    # x (P,H,W) -> y (P,OH,OW); one thread per output element
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    t = cuda.grid(1)
    if t >= P * OH * OW:
        return
    p = t // (OH * OW)
    i = (t // OW) % OH
    j = t % OW
    h0, h1 = (i * H) // OH, ((i + 1) * H + OH - 1) // OH
    w0, w1 = (j * W) // OW, ((j + 1) * W + OW - 1) // OW
    total = 0.0
    for h in range(h0, h1):
        for w in range(w0, w1):
            total += x[p, h, w]
    y[p, i, j] = total / ((h1 - h0) * (w1 - w0))


def adaptive_avg_pool2d_forward(x, output_size):
    """y (N,C,OH,OW): the mean of each bin of x (N,C,H,W)."""
    xp = array_module(x)
    N, C, H, W = x.shape
    OH, OW = output_size
    y = xp.empty((N * C, OH, OW), dtype=x.dtype)
    _avg_forward_kernel[_blocks(y.size), THREADS](xp.ascontiguousarray(x).reshape(N * C, H, W), y)
    return y.reshape(N, C, OH, OW)


@cuda.jit
def _avg_backward_kernel(dy, dx):
    # dy (P,OH,OW) -> dx (P,H,W); one thread per input pixel, gathering from its bins
    P, OH, OW = dy.shape
    H, W = dx.shape[1], dx.shape[2]
    t = cuda.grid(1)
    if t >= P * H * W:
        return
    p = t // (H * W)
    h = (t // W) % H
    w = t % W
    total = 0.0
    for i in range((h * OH) // H, ((h + 1) * OH + H - 1) // H):
        h0, h1 = (i * H) // OH, ((i + 1) * H + OH - 1) // OH
        for j in range((w * OW) // W, ((w + 1) * OW + W - 1) // W):
            w0, w1 = (j * W) // OW, ((j + 1) * W + OW - 1) // OW
            total += dy[p, i, j] / ((h1 - h0) * (w1 - w0))
    dx[p, h, w] = total


def adaptive_avg_pool2d_backward(dy, input_shape):
    """dx (N,C,H,W): each dy[n,c,i,j] spread evenly over its bin; overlapping bins add up."""
    xp = array_module(dy)
    N, C, H, W = input_shape
    OH, OW = dy.shape[2], dy.shape[3]
    dx = xp.empty((N * C, H, W), dtype=dy.dtype)  # every pixel is written once by its thread
    _avg_backward_kernel[_blocks(dx.size), THREADS](xp.ascontiguousarray(dy).reshape(N * C, OH, OW), dx)
    return dx.reshape(N, C, H, W)


@cuda.jit
def _max_forward_kernel(x, y, indices, lowest):
    # x (P,H,W) -> y, indices (P,OH,OW); one thread per output element
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    t = cuda.grid(1)
    if t >= P * OH * OW:
        return
    p = t // (OH * OW)
    i = (t // OW) % OH
    j = t % OW
    h0, h1 = (i * H) // OH, ((i + 1) * H + OH - 1) // OH
    w0, w1 = (j * W) // OW, ((j + 1) * W + OW - 1) // OW
    best = lowest          # -inf in x's dtype (a float64 -math.inf would make `best` float64)
    best_index = h0 * W + w0
    for h in range(h0, h1):
        for w in range(w0, w1):
            v = x[p, h, w]
            if v > best or (math.isnan(v) and not math.isnan(best)):
                best = v
                best_index = h * W + w
    y[p, i, j] = best
    indices[p, i, j] = best_index


def adaptive_max_pool2d_forward(x, output_size):
    """y, indices (N,C,OH,OW): the max of each bin of x (N,C,H,W) and its flat index h*W + w."""
    xp = array_module(x)
    N, C, H, W = x.shape
    OH, OW = output_size
    y = xp.empty((N * C, OH, OW), dtype=x.dtype)
    indices = xp.empty((N * C, OH, OW), dtype=np.int64)
    _max_forward_kernel[_blocks(y.size), THREADS](xp.ascontiguousarray(x).reshape(N * C, H, W), y, indices,
                                                  x.dtype.type(-np.inf))
    return y.reshape(N, C, OH, OW), indices.reshape(N, C, OH, OW)


def adaptive_max_pool2d_backward(dy, indices, input_shape):
    """dx (N,C,H,W): each dy[n,c,i,j] added to the pixel indices[n,c,i,j] of plane (n,c).

    Routing a gradient to its argmax does not care how the windows were chosen, so this is
    exactly max pooling's backward.
    """
    return max_pool2d_backward(dy, indices, input_shape)
