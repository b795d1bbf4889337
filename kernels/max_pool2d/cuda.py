"""Max pooling with Numba CUDA: one thread per output element.

Forward: thread (p, i, j) scans its window, like one iteration of the cpu variant's loops.
Backward: a scatter with atomics. Thread (p, i, j) adds dy[p, i, j] to dx[p, indices[p, i, j]]
with `cuda.atomic.add`, because two windows that overlap (stride < kernel) can pick the same
pixel and their adds would race. Collisions are rare (only shared winners), so the atomics cost
little; the alternative, a gather per input pixel that re-scans every window containing it,
would read the indices up to ceil(KH/SH)*ceil(KW/SW) times. The order of the adds to one pixel
is not fixed, so the last bits of dx may differ between runs when windows share a winner.
Runs on CuPy arrays, and on NumPy arrays under the simulator (NUMBA_ENABLE_CUDASIM=1).
"""

import math

import numpy as np
from numba import cuda

from .. import array_module
from . import pool_output_size

THREADS = 128


def _blocks(total):
    """Blocks of THREADS threads covering `total` elements (at least one: a grid cannot be empty)."""
    return max((total + THREADS - 1) // THREADS, 1)


@cuda.jit
def _forward_kernel(x, KH, KW, SH, SW, PH, PW, y, indices, lowest):
    # x (P,H,W) -> y, indices (P,OH,OW); one thread per output element
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    t = cuda.grid(1)
    if t >= P * OH * OW:
        return
    p = t // (OH * OW)
    i = (t // OW) % OH
    j = t % OW
    h0 = i * SH - PH
    w0 = j * SW - PW
    best = lowest          # -inf in x's dtype (a float64 -math.inf would make `best` float64)
    best_index = max(h0, 0) * W + max(w0, 0)
    for h in range(max(h0, 0), min(h0 + KH, H)):
        for w in range(max(w0, 0), min(w0 + KW, W)):
            v = x[p, h, w]
            if v > best or (math.isnan(v) and not math.isnan(best)):
                best = v
                best_index = h * W + w
    y[p, i, j] = best
    indices[p, i, j] = best_index


def max_pool2d_forward(x, kernel_size, stride, padding, ceil_mode):
    """y, indices (N,C,OH,OW) for x (N,C,H,W); indices are flat h*W + w, int64."""
    xp = array_module(x)
    N, C, H, W = x.shape
    # Python ints: an np.int32 stride would make Numba compile the kernel a second time.
    KH, KW, SH, SW, PH, PW = (int(v) for v in (*kernel_size, *stride, *padding))
    OH = pool_output_size(H, KH, SH, PH, ceil_mode)
    OW = pool_output_size(W, KW, SW, PW, ceil_mode)
    y = xp.empty((N * C, OH, OW), dtype=x.dtype)
    indices = xp.empty((N * C, OH, OW), dtype=np.int64)
    _forward_kernel[_blocks(y.size), THREADS](xp.ascontiguousarray(x).reshape(N * C, H, W),
                                     KH, KW, SH, SW, PH, PW, y, indices, x.dtype.type(-np.inf))
    return y.reshape(N, C, OH, OW), indices.reshape(N, C, OH, OW)


@cuda.jit
def _backward_kernel(dy, indices, dx):
    # dy, indices (P,K) -> dx (P,H*W); one thread per output element, atomic scatter-add
    P, K = dy.shape
    t = cuda.grid(1)
    if t >= P * K:
        return
    p = t // K
    k = t % K
    cuda.atomic.add(dx, (p, indices[p, k]), dy[p, k])


def max_pool2d_backward(dy, indices, input_shape):
    """dx (N,C,H,W): each dy[n,c,i,j] added to the pixel indices[n,c,i,j] of plane (n,c)."""
    xp = array_module(dy)
    N, C, H, W = input_shape
    dx = xp.zeros((N * C, H * W), dtype=dy.dtype)
    K = dy.shape[2] * dy.shape[3]  # (not -1: reshape cannot infer it for an empty dy)
    _backward_kernel[_blocks(dy.size), THREADS](xp.ascontiguousarray(dy).reshape(N * C, K),
                                      xp.ascontiguousarray(indices).reshape(N * C, K), dx)
    return dx.reshape(N, C, H, W)
