"""Adaptive average and max pooling in plain NumPy: the readable definition.

Loops over the OH x OW bins (at most a few dozen in PSPNet) and lets NumPy do each bin for all
N*C planes at once. See the package docstring for the math.
"""

import numpy as np


def adaptive_bin_edges(in_size, out_size):
    """start, end (int64 arrays of length out_size): bin i covers [start[i], end[i]).

    start = floor(i * in / out), end = ceil((i + 1) * in / out), in integer arithmetic.
    """
    i = np.arange(out_size, dtype=np.int64)
    start = (i * in_size) // out_size
    end = ((i + 1) * in_size + out_size - 1) // out_size  # ceil without floats
    return start, end


def adaptive_avg_pool2d_forward(x, output_size):
    """y (N,C,OH,OW): the mean of each bin of x (N,C,H,W)."""
    N, C, H, W = x.shape
    OH, OW = output_size
    rows, cols = adaptive_bin_edges(H, OH), adaptive_bin_edges(W, OW)
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    for i in range(OH):
        for j in range(OW):
            y[:, :, i, j] = x[:, :, rows[0][i]:rows[1][i], cols[0][j]:cols[1][j]].mean(axis=(2, 3))
    return y


def adaptive_avg_pool2d_backward(dy, input_shape):
    """dx (N,C,H,W): each dy[n,c,i,j] spread evenly over its bin; overlapping bins add up."""
    N, C, H, W = input_shape
    OH, OW = dy.shape[2], dy.shape[3]
    rows, cols = adaptive_bin_edges(H, OH), adaptive_bin_edges(W, OW)
    dx = np.zeros(input_shape, dtype=dy.dtype)
    for i in range(OH):
        for j in range(OW):
            h0, h1, w0, w1 = rows[0][i], rows[1][i], cols[0][j], cols[1][j]
            area = (h1 - h0) * (w1 - w0)
            dx[:, :, h0:h1, w0:w1] += dy[:, :, i, j, None, None] / area   # (N,C,1,1) broadcast
    return dx


def adaptive_max_pool2d_forward(x, output_size):
    """y, indices (N,C,OH,OW): the max of each bin of x (N,C,H,W) and its flat index h*W + w."""
    N, C, H, W = x.shape
    OH, OW = output_size
    rows, cols = adaptive_bin_edges(H, OH), adaptive_bin_edges(W, OW)
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    indices = np.empty((N, C, OH, OW), dtype=np.int64)
    for i in range(OH):
        for j in range(OW):
            h0, h1, w0, w1 = rows[0][i], rows[1][i], cols[0][j], cols[1][j]
            bin_values = x[:, :, h0:h1, w0:w1].reshape(N, C, -1)         # (N,C,bin area)
            k = np.argmax(bin_values, axis=2)    # first max; np.argmax also picks the first NaN
            y[:, :, i, j] = np.take_along_axis(bin_values, k[:, :, None], axis=2)[:, :, 0]
            # position k in the bin (row-major, width w1 - w0) -> row and column in the plane
            indices[:, :, i, j] = (h0 + k // (w1 - w0)) * W + (w0 + k % (w1 - w0))
    return y, indices


def adaptive_max_pool2d_backward(dy, indices, input_shape):
    """dx (N,C,H,W): each dy[n,c,i,j] added to the pixel indices[n,c,i,j] of plane (n,c)."""
    N, C, H, W = input_shape
    dx = np.zeros((N * C, H * W), dtype=dy.dtype)
    planes = np.arange(N * C)[:, None]                                 # (N*C, 1)
    # np.add.at, not dx[...] += dy: a pixel that is the max of two overlapping bins gets both.
    np.add.at(dx, (planes, indices.reshape(N * C, -1)), dy.reshape(N * C, -1))
    return dx.reshape(N, C, H, W)
