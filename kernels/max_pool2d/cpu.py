"""Max pooling with Numba on the CPU: one (n, c) plane per parallel iteration.

The planes are independent, so `prange` over N*C needs no locks, even in backward where
overlapping windows add into the same pixel: all of a plane's windows run in one thread.
"""

import math

import numpy as np
from numba import njit, prange

from . import pool_output_size


@njit(cache=True, parallel=True)
def _forward_planes(x, KH, KW, SH, SW, PH, PW, y, indices):
    # x (P,H,W) -> y, indices (P,OH,OW), P = N*C
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(P):
        for i in range(OH):
            h0 = i * SH - PH
            for j in range(OW):
                w0 = j * SW - PW
                best = -math.inf
                best_index = max(h0, 0) * W + max(w0, 0)  # the first real pixel, as torch
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
    N, C, H, W = x.shape
    (KH, KW), (SH, SW), (PH, PW) = kernel_size, stride, padding
    OH = pool_output_size(H, KH, SH, PH, ceil_mode)
    OW = pool_output_size(W, KW, SW, PW, ceil_mode)
    y = np.empty((N * C, OH, OW), dtype=x.dtype)
    indices = np.empty((N * C, OH, OW), dtype=np.int64)
    _forward_planes(np.ascontiguousarray(x).reshape(N * C, H, W), KH, KW, SH, SW, PH, PW, y, indices)
    return y.reshape(N, C, OH, OW), indices.reshape(N, C, OH, OW)


@njit(cache=True, parallel=True)
def _backward_planes(dy, indices, dx):
    # dy, indices (P,K) -> dx (P,H*W): a scatter-add within each plane
    P, K = dy.shape
    for p in prange(P):
        dx[p, :] = 0
        for k in range(K):
            dx[p, indices[p, k]] += dy[p, k]


def max_pool2d_backward(dy, indices, input_shape):
    """dx (N,C,H,W): each dy[n,c,i,j] added to the pixel indices[n,c,i,j] of plane (n,c)."""
    N, C, H, W = input_shape
    dx = np.empty((N * C, H * W), dtype=dy.dtype)  # zeroed plane by plane, in parallel
    _backward_planes(np.ascontiguousarray(dy).reshape(N * C, -1),
                     np.ascontiguousarray(indices).reshape(N * C, -1), dx)
    return dx.reshape(N, C, H, W)
