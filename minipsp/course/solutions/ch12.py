"""Chapter 12 (fast convolution): reference solutions. Open after you have tried; the check's message comes first."""

import numpy as np

from minipsp.kernels.conv2d import reference
from minipsp.kernels.conv2d.winograd import MATRICES


def f23_tiles(d, g):
    """12.1: y[i] = sum_k g[k] d[i + k] by F(2, 3) tiles; returns (m (T, 4), y (n - 2,))."""
    BT, G, AT = (MATRICES[2][k] for k in ("BT", "G", "AT"))
    n_out = len(d) - 2
    T = (n_out + 1) // 2                                  # tiles of 2 outputs; the last one may hang over
    d = np.concatenate([d, np.zeros(2 * T + 2 - len(d))])  # zeros under the overhanging output
    u = G @ g                                             # the filter transform: once, not per tile
    m = np.stack([u * (BT @ d[2 * t:2 * t + 4]) for t in range(T)])  # tile t reads d[2t : 2t+4]
    y = (m @ AT.T).reshape(-1)[:n_out]                    # A^T m per tile, drop the overhanging output
    return m, y


def winograd_tile(d, w, m):
    """12.2: one m x m output tile of a 3x3 layer: d (C_in, m+2, m+2), w (C_out, C_in, 3, 3) -> (U, V, Y)."""
    BT, G, AT = (MATRICES[m][k] for k in ("BT", "G", "AT"))
    U = np.einsum("ik,ockl,jl->ijoc", G, w, G)   # (alpha, alpha, C_out, C_in): G w G^T per (co, ci)
    V = np.einsum("ik,ckl,jl->ijc", BT, d, BT)   # (alpha, alpha, C_in): B^T d B per channel
    M = np.einsum("ijoc,ijc->ijo", U, V)         # alpha^2 matrix-vector products, the sum over C_in
    Y = np.einsum("ik,klo,jl->oij", AT, M, AT)   # A^T M A per output channel
    return U, V, Y


def dilated_conv_by_phases(x, w, padding, dilation):
    """12.3: conv(x, w, padding p, dilation d), stride 1, as d*d undilated convolutions on the phase sub-images."""
    p, d = padding, dilation
    N, _, H, W = x.shape
    OH, OW = H + 2 * p - 2 * d, W + 2 * p - 2 * d
    y = np.zeros((N, w.shape[0], OH, OW))
    for a in range(min(d, OH)):
        for b in range(min(d, OW)):
            qh, r = divmod(a - p, d)       # output phase a reads input phase r, from row qh (<= 0) of x[r::d]
            qw, s = divmod(b - p, d)
            oha, owb = y[:, :, a::d, b::d].shape[2:]
            sub = np.pad(x[:, :, r::d, s::d], ((0, 0), (0, 0), (-qh, p), (-qw, p)))  # zeros below: the padding
            y[:, :, a::d, b::d] = reference.conv2d_forward(sub, w, None, (1, 1), (0, 0), (1, 1))[:, :, :oha, :owb]
    return y
