"""Winograd's tile transforms on gathered tiles: the vector loops of winograd_strips.py, for small maps.

winograd_strips.py makes "the same value of the next tile" a neighbour in memory by space-to-depth,
which needs one tile per row of tiles that is not a tile; on a small phase image (PSPNet's 17 px maps
with dilation 2 or 4: phases of 4 to 9 px, 1 to 3 tiles a row) that is 33-100% more GEMM work, and
the loops over a phase's few tiles are too short for vectors. So winograd.py kept the per-tile loops
there, scalar code at about 90 ns an F(2x2) tile on layer4's 4 px phases (every tile hangs over an
edge, so every value is a test and a load).

Here every value of every tile is gathered instead, through an index table made once per shape:

    D[k*alpha + l][n*T + t] = x[n, c] at sources[k*alpha + l, t]  (0 where that is -1)

for tile t (winograd.py's per-tile numbering: phase base + th*tiles_w + tw) of image n. A pixel
is read by each tile that overlaps it ((alpha/m)^2 times: 2.25 for F(4x4), 4 for F(2x2)), but then
value (k, l) of all the call's tiles, over all images and phases, is one contiguous row of N*T
values and no tile is wasted; the transforms are winograd_strips' row loops over that row. The
output side is the same backwards: Y = A^T M A by rows, then each of its m*m rows scattered into y
through a table of offsets (-1: outside y, dropped), and dw's dy tiles gathered through that table.

Each value is the same sum in the same order as in the per-tile loops (bit for bit; tested).
"""

import numpy as np
from numba import njit, prange, uint64

from . import space_to_batch as stb
from .winograd_strips import _a2_rows, _a4_rows, _at2_rows, _at4_rows, _bt2_rows, _bt4_rows


def sources(table, per_image, H, W, dilation, m):
    """(alpha^2, per_image) int64: for value (k, l) of tile t, its offset in an (H, W) image plane,
    or -1 for a zero (outside the phase's sub-image: the convolution's padding)."""
    alpha, (dh, dw) = m + 2, dilation
    out = np.full((alpha * alpha, per_image), -1, dtype=np.int64)
    for row in table:
        r, s, hr, wr, qh, qw, base = (int(row[i]) for i in (stb.R, stb.S, stb.HR, stb.WR, stb.QH, stb.QW, stb.BASE))
        tiles_h, tiles_w = int(row[stb.TILES_H]), int(row[stb.TILES_W])
        u = qh + m * np.arange(tiles_h)[None, :] + np.arange(alpha)[:, None]        # (k, th): sub-image row
        v = qw + m * np.arange(tiles_w)[None, :] + np.arange(alpha)[:, None]        # (l, tw)
        inside = ((u >= 0) & (u < hr))[:, None, :, None] & ((v >= 0) & (v < wr))[None, :, None, :]
        offsets = (r + dh * u)[:, None, :, None] * W + (s + dw * v)[None, :, None, :]
        out[:, base:base + tiles_h * tiles_w] = np.where(inside, offsets, -1).reshape(alpha * alpha, -1)
    return out


def targets(table, per_image, dilation, m):
    """(rows, columns), two (m^2, per_image) int64 arrays: for output (i, j) of tile t, its pixel of y,
    or -1 where the tile hangs over y's edge. (A pixel as two indices, not one offset: y may be a view
    of some of a larger array's channels, _correlate_weight's blocks, which a flat offset cannot reach.)"""
    dh, dw = dilation
    rows, columns = np.full((m * m, per_image), -1, dtype=np.int64), np.full((m * m, per_image), -1, dtype=np.int64)
    for row in table:
        a, b, oha, owb, base = (int(row[i]) for i in (stb.A, stb.B, stb.OHA, stb.OWB, stb.BASE))
        tiles_h, tiles_w = int(row[stb.TILES_H]), int(row[stb.TILES_W])
        oi = m * np.arange(tiles_h)[None, :] + np.arange(m)[:, None]                # (i, th)
        oj = m * np.arange(tiles_w)[None, :] + np.arange(m)[:, None]                # (j, tw)
        inside = (oi < oha)[:, None, :, None] & (oj < owb)[None, :, None, :]
        h = np.broadcast_to((a + dh * oi)[:, None, :, None], inside.shape)
        w = np.broadcast_to((b + dw * oj)[None, :, None, :], inside.shape)
        rows[:, base:base + tiles_h * tiles_w] = np.where(inside, h, -1).reshape(m * m, -1)
        columns[:, base:base + tiles_h * tiles_w] = np.where(inside, w, -1).reshape(m * m, -1)
    return rows, columns


# ---------------------------------------------------------------- input transform: x -> V

@njit(cache=True, inline="always")
def _gather(src_flat, plane_size, first_plane, step, sources, N, D):
    """D[r, n*T + t] = plane first_plane + n*step of src_flat at sources[r, t], 0 where that is -1."""
    T = sources.shape[1]
    for r in range(sources.shape[0]):
        for n in range(N):
            base = (first_plane + n * step) * plane_size
            column = uint64(n * T)
            for t in range(T):
                i = sources[r, t]
                D[r, column + uint64(t)] = src_flat[uint64(base + i)] if i >= 0 else 0


@njit(cache=True, inline="always")
def _input_channel(x_flat, shape, V, columns, c, sources, m, k, D, T1):
    """V[:, c*columns : c*columns + N*T] = B^T d B of channel c's tiles, all images at once."""
    N, C, H, W = shape
    _gather(x_flat, H * W, c, C, sources, N, D)
    L, alpha, dst = N * sources.shape[1], m + 2, c * columns
    for l in range(alpha):          # B^T d: B^T over each column l of the tiles
        if m == 4:
            _bt4_rows(D, l, 0, 6 + l, 0, 12 + l, 0, 18 + l, 0, 24 + l, 0, 30 + l, 0,
                      T1, l, 6 + l, 12 + l, 18 + l, 24 + l, 30 + l, 0, L, k)
        else:
            _bt2_rows(D, l, 0, 4 + l, 0, 8 + l, 0, 12 + l, 0, T1, l, 4 + l, 8 + l, 12 + l, 0, L)
    for i in range(alpha):          # (B^T d) B: B^T over each row i
        a = i * alpha
        if m == 4:
            _bt4_rows(T1, a, 0, a + 1, 0, a + 2, 0, a + 3, 0, a + 4, 0, a + 5, 0,
                      V, a, a + 1, a + 2, a + 3, a + 4, a + 5, dst, L, k)
        else:
            _bt2_rows(T1, a, 0, a + 1, 0, a + 2, 0, a + 3, 0, V, a, a + 1, a + 2, a + 3, dst, L)


@njit(cache=True, inline="always")
def _scratch(rows_a, rows_b, N, sources, dtype):
    return np.empty((rows_a, N * sources.shape[1]), dtype=dtype), np.empty((rows_b, N * sources.shape[1]), dtype=dtype)


@njit(cache=True, nogil=True)
def input_serial(x, V, columns, sources, m, k):
    """V[:, c*columns + n*T + t] = B^T d B of tile t of image n of x (g, C, H, W), sources from sources()."""
    D, T1 = _scratch((m + 2) ** 2, (m + 2) ** 2, x.shape[0], sources, x.dtype)
    x_flat = x.reshape(-1)
    for c in range(x.shape[1]):
        _input_channel(x_flat, x.shape, V, columns, c, sources, m, k, D, T1)


@njit(cache=True, parallel=True)
def input_parallel(x, V, columns, sources, m, k):
    x_flat = x.reshape(-1)
    for c in prange(x.shape[1]):
        D, T1 = _scratch((m + 2) ** 2, (m + 2) ** 2, x.shape[0], sources, x.dtype)
        _input_channel(x_flat, x.shape, V, columns, c, sources, m, k, D, T1)


# ---------------------------------------------------------------- output transform: M -> y

@njit(cache=True, inline="always")
def _output_channel(M, columns, y, co, rows_, columns_, m, k, S, Y):
    N, T = y.shape[0], rows_.shape[1]
    L, alpha, src = N * T, m + 2, co * columns
    for j in range(alpha):          # A^T M: A^T over each column j of the tiles
        if m == 4:
            _at4_rows(M, j, 6 + j, 12 + j, 18 + j, 24 + j, 30 + j, src, S, j, 6 + j, 12 + j, 18 + j, 0, L, k)
        else:
            _at2_rows(M, j, 4 + j, 8 + j, 12 + j, src, S, j, 4 + j, 0, L)
    for i in range(m):              # (A^T M) A: A^T over each row i
        a = i * alpha
        if m == 4:
            _at4_rows(S, a, a + 1, a + 2, a + 3, a + 4, a + 5, 0, Y, 4 * i, 4 * i + 1, 4 * i + 2, 4 * i + 3, 0, L, k)
        else:
            _at2_rows(S, a, a + 1, a + 2, a + 3, 0, Y, 2 * i, 2 * i + 1, 0, L)
    for r in range(m * m):          # the parts of the tiles inside y
        for n in range(N):
            column = uint64(n * T)
            for t in range(T):
                h = rows_[r, t]
                if h >= 0:
                    y[n, co, uint64(h), uint64(columns_[r, t])] = Y[r, column + uint64(t)]


@njit(cache=True, nogil=True)
def output_serial(M, columns, y, targets, m, k):
    """y (g, C_out, OH, OW) from the tiles M[:, co*columns + n*T + t] (Y = A^T M A), targets from targets()."""
    S, Y = _scratch(m * (m + 2), m * m, y.shape[0], targets[0], y.dtype)
    for co in range(y.shape[1]):
        _output_channel(M, columns, y, co, targets[0], targets[1], m, k, S, Y)


@njit(cache=True, parallel=True)
def output_parallel(M, columns, y, targets, m, k):
    for co in prange(y.shape[1]):
        S, Y = _scratch(m * (m + 2), m * m, y.shape[0], targets[0], y.dtype)
        _output_channel(M, columns, y, co, targets[0], targets[1], m, k, S, Y)


# ---------------------------------------------------------------- dw's transform: dy -> Z

@njit(cache=True, inline="always")
def _grad_channel(dy, Z, columns, co, rows_, columns_, m, k, E, S):
    N, T = dy.shape[0], rows_.shape[1]
    for r in range(m * m):          # E[i*m + j, n*T + t]: the tile's dy, 0 outside dy
        for n in range(N):
            column = uint64(n * T)
            for t in range(T):
                h = rows_[r, t]
                E[r, column + uint64(t)] = dy[n, co, uint64(h), uint64(columns_[r, t])] if h >= 0 else 0
    L, alpha, dst = N * T, m + 2, co * columns
    for j in range(m):              # A e: A over each column j
        if m == 4:
            _a4_rows(E, j, 4 + j, 8 + j, 12 + j, 0, S, j, 4 + j, 8 + j, 12 + j, 16 + j, 20 + j, 0, L, k)
        else:
            _a2_rows(E, j, 2 + j, 0, S, j, 2 + j, 4 + j, 6 + j, 0, L)
    for r in range(alpha):          # (A e) A^T: A over each row r
        a, z = r * m, r * alpha
        if m == 4:
            _a4_rows(S, a, a + 1, a + 2, a + 3, 0, Z, z, z + 1, z + 2, z + 3, z + 4, z + 5, dst, L, k)
        else:
            _a2_rows(S, a, a + 1, 0, Z, z, z + 1, z + 2, z + 3, dst, L)


@njit(cache=True, nogil=True)
def grad_serial(dy, Z, columns, targets, m, k):
    """Z[:, co*columns + n*T + t] = A e A^T for every m x m tile e of dy (zero outside), targets from targets()."""
    E, S = _scratch(m * m, (m + 2) * m, dy.shape[0], targets[0], dy.dtype)
    for co in range(dy.shape[1]):
        _grad_channel(dy, Z, columns, co, targets[0], targets[1], m, k, E, S)


@njit(cache=True, parallel=True)
def grad_parallel(dy, Z, columns, targets, m, k):
    for co in prange(dy.shape[1]):
        E, S = _scratch(m * m, (m + 2) * m, dy.shape[0], targets[0], dy.dtype)
        _grad_channel(dy, Z, columns, co, targets[0], targets[1], m, k, E, S)
