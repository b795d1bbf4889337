"""Max pooling in plain NumPy: the readable definition (see the package docstring for the math).

Forward loops over the KH*KW offsets of the window, not over pixels: for one offset (a, b) the
pixels it picks in every window form a strided slice of the padded input, so each step compares
a whole (N,C,OH,OW) slice with the running maximum.
"""

import numpy as np

from . import pool_output_size


def max_pool2d_forward(x, kernel_size, stride, padding, ceil_mode):
    """y, indices (N,C,OH,OW) for x (N,C,H,W); indices are flat h*W + w, int64."""
    N, C, H, W = x.shape
    (KH, KW), (SH, SW), (PH, PW) = kernel_size, stride, padding
    OH = pool_output_size(H, KH, SH, PH, ceil_mode)
    OW = pool_output_size(W, KW, SW, PW, ceil_mode)
    # -inf padding; with ceil_mode the last window may also hang over the right/bottom edge.
    HP = max(H + 2 * PH, (OH - 1) * SH + KH)
    WP = max(W + 2 * PW, (OW - 1) * SW + KW)
    padded = np.full((N, C, HP, WP), -np.inf, dtype=x.dtype)
    padded[:, :, PH:PH + H, PW:PW + W] = x

    # Start from -inf at the first real pixel of each window, so that a window of -inf values
    # still points at a pixel inside the input (as torch does).
    rows0 = np.maximum(np.arange(OH) * SH - PH, 0)                     # (OH,)
    cols0 = np.maximum(np.arange(OW) * SW - PW, 0)                     # (OW,)
    y = np.full((N, C, OH, OW), -np.inf, dtype=x.dtype)
    indices = np.broadcast_to(rows0[:, None] * W + cols0[None, :], (N, C, OH, OW)).astype(np.int64)
    for a in range(KH):
        for b in range(KW):
            window = padded[:, :, a:a + (OH - 1) * SH + 1:SH, b:b + (OW - 1) * SW + 1:SW]  # (N,C,OH,OW)
            rows = np.arange(OH) * SH - PH + a                         # input row of this offset
            cols = np.arange(OW) * SW - PW + b
            flat = rows[:, None] * W + cols[None, :]                   # (OH,OW); junk where padded,
            # but a padded -inf is never > y and never NaN, so junk is never chosen.
            better = (window > y) | (np.isnan(window) & ~np.isnan(y))  # strict >: first max wins
            y = np.where(better, window, y)
            indices = np.where(better, flat, indices)
    return y, indices


def max_pool2d_backward(dy, indices, input_shape):
    """dx (N,C,H,W): each dy[n,c,i,j] added to the pixel indices[n,c,i,j] of plane (n,c)."""
    N, C, H, W = input_shape
    dx = np.zeros((N * C, H * W), dtype=dy.dtype)
    planes = np.arange(N * C)[:, None]                                 # (N*C, 1)
    # np.add.at, not dx[...] += dy: a pixel that wins several windows must get every dy.
    np.add.at(dx, (planes, indices.reshape(N * C, -1)), dy.reshape(N * C, -1))
    return dx.reshape(N, C, H, W)
