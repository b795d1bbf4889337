"""Reference solutions of chapter 04's exercises (pooling)."""

import numpy as np


def max_pool_backward(dy, indices, x_shape):
    """4.1: dx (N, C, H, W) from dy and indices (N, C, OH, OW), indices flat h*W + w within each plane."""
    N, C, H, W = x_shape
    dx = np.zeros((N * C, H * W), dtype=dy.dtype)
    planes = np.arange(N * C)[:, None]                      # each row of dx is one (n, c) plane
    # add.at adds once per occurrence: a pixel that won two windows receives both gradients
    np.add.at(dx, (planes, indices.reshape(N * C, -1)), dy.reshape(N * C, -1))
    return dx.reshape(x_shape)


def adaptive_avg_pool_plane(x, output_size):
    """4.2: x (H, W) -> (OH, OW); bin i covers [floor(i*H/OH), ceil((i+1)*H/OH))."""
    H, W = x.shape
    OH, OW = output_size
    rows = [(i * H // OH, -(-(i + 1) * H // OH)) for i in range(OH)]  # -(-a // b) is ceil(a / b)
    cols = [(j * W // OW, -(-(j + 1) * W // OW)) for j in range(OW)]
    return np.array([[x[r0:r1, c0:c1].mean() for c0, c1 in cols] for r0, r1 in rows])
