"""Adaptive average and max pooling with Numba on the CPU: one (n, c) plane per parallel iteration.

The bin edges come from the reference's `adaptive_bin_edges` (computed once per call, in NumPy)
and are passed to the compiled loops as arrays. Planes are independent, so `prange` over N*C
needs no locks, not even in the backward scatter, where overlapping bins add into shared pixels.
"""

import math

import numpy as np
from numba import njit, prange

from ..max_pool2d.cpu import max_pool2d_backward
from .reference import adaptive_bin_edges


# fastmath reassoc: the bin's sum may go in vector lanes (batch_norm/cpu.py says why; still float64)
@njit(cache=True, parallel=True, fastmath={"reassoc"})
def _avg_forward_planes(x, row_start, row_end, col_start, col_end, y):
    # x (P,H,W) -> y (P,OH,OW)
    P = x.shape[0]
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(P):
        for i in range(OH):
            for j in range(OW):
                total = 0.0  # float64 accumulator: a 60x60 bin sums 3600 values
                for h in range(row_start[i], row_end[i]):
                    for w in range(col_start[j], col_end[j]):
                        total += x[p, h, w]
                area = (row_end[i] - row_start[i]) * (col_end[j] - col_start[j])
                y[p, i, j] = total / area


def adaptive_avg_pool2d_forward(x, output_size):
    """y (N,C,OH,OW): the mean of each bin of x (N,C,H,W)."""
    N, C, H, W = x.shape
    OH, OW = output_size
    (row_start, row_end), (col_start, col_end) = adaptive_bin_edges(H, OH), adaptive_bin_edges(W, OW)
    y = np.empty((N * C, OH, OW), dtype=x.dtype)
    _avg_forward_planes(np.ascontiguousarray(x).reshape(N * C, H, W), row_start, row_end, col_start, col_end, y)
    return y.reshape(N, C, OH, OW)


@njit(cache=True, parallel=True)
def _avg_backward_planes(dy, row_start, row_end, col_start, col_end, dx, overlapping):
    # dy (P,OH,OW) -> dx (P,H,W). Bins that do not overlap (H % OH == 0 and W % OW == 0, PSPNet's
    # 1 x 1 bin among them) tile the plane: each pixel is written once, with no zeroing pass first
    # and no read of what is there (the zero-then-add loop took 2.4x a np.full of dx).
    P = dy.shape[0]
    OH, OW = dy.shape[1], dy.shape[2]
    for p in prange(P):
        if overlapping:
            dx[p, :, :] = 0
        for i in range(OH):
            for j in range(OW):
                area = (row_end[i] - row_start[i]) * (col_end[j] - col_start[j])
                share = dy[p, i, j] / area
                for h in range(row_start[i], row_end[i]):
                    for w in range(col_start[j], col_end[j]):
                        if overlapping:
                            dx[p, h, w] += share
                        else:
                            dx[p, h, w] = share


def adaptive_avg_pool2d_backward(dy, input_shape):
    """dx (N,C,H,W): each dy[n,c,i,j] spread evenly over its bin; overlapping bins add up."""
    N, C, H, W = input_shape
    OH, OW = dy.shape[2], dy.shape[3]
    (row_start, row_end), (col_start, col_end) = adaptive_bin_edges(H, OH), adaptive_bin_edges(W, OW)
    dx = np.empty((N * C, H, W), dtype=dy.dtype)  # zeroed plane by plane, in parallel
    # (an empty output has no bins to write dx: it goes the zeroing way)
    overlapping = bool(np.any(row_start[1:] < row_end[:-1]) or np.any(col_start[1:] < col_end[:-1])
                       or OH == 0 or OW == 0)
    _avg_backward_planes(np.ascontiguousarray(dy).reshape(N * C, OH, OW),
                         row_start, row_end, col_start, col_end, dx, overlapping)
    return dx.reshape(N, C, H, W)


@njit(cache=True, parallel=True)
def _max_forward_planes(x, row_start, row_end, col_start, col_end, y, indices):
    # x (P,H,W) -> y, indices (P,OH,OW)
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(P):
        for i in range(OH):
            for j in range(OW):
                best = -math.inf
                best_index = row_start[i] * W + col_start[j]
                for h in range(row_start[i], row_end[i]):
                    for w in range(col_start[j], col_end[j]):
                        v = x[p, h, w]
                        if v > best or (math.isnan(v) and not math.isnan(best)):
                            best = v
                            best_index = h * W + w
                y[p, i, j] = best
                indices[p, i, j] = best_index


def adaptive_max_pool2d_forward(x, output_size):
    """y, indices (N,C,OH,OW): the max of each bin of x (N,C,H,W) and its flat index h*W + w."""
    N, C, H, W = x.shape
    OH, OW = output_size
    (row_start, row_end), (col_start, col_end) = adaptive_bin_edges(H, OH), adaptive_bin_edges(W, OW)
    y = np.empty((N * C, OH, OW), dtype=x.dtype)
    indices = np.empty((N * C, OH, OW), dtype=np.int64)
    _max_forward_planes(np.ascontiguousarray(x).reshape(N * C, H, W),
                        row_start, row_end, col_start, col_end, y, indices)
    return y.reshape(N, C, OH, OW), indices.reshape(N, C, OH, OW)


def adaptive_max_pool2d_backward(dy, indices, input_shape):
    """dx (N,C,H,W): each dy[n,c,i,j] added to the pixel indices[n,c,i,j] of plane (n,c).

    Routing a gradient to its argmax does not care how the windows were chosen, so this is
    exactly max pooling's backward.
    """
    return max_pool2d_backward(dy, indices, input_shape)
