"""Winograd's tile transforms on strips: every transformed position a contiguous row, so they vectorise.

winograd.py's transform loops go one tile at a time (36 reads, some 200 multiply-adds, 36 writes for
F(4x4)), all scalar instructions: about 290 cycles per tile and channel. On 64 channels that is
four times the GEMMs' work per tile, and the 3x3 convolutions of PSPNet's stem and layer1 (and the
8 x 64 x 64 x 64 case of benchmarks.ops) spend 70% of their time there. A vector unit does 8 or 16
of one operation at once on neighbouring memory, so the question is how to make "the same value of
the neighbouring tile" a neighbour in memory.

For the output side it already is: M[xi, co, t] runs along the tiles t. The input side is the
problem: tile t = (th, tw) reads x at rows m*th + k, columns m*tw + l (k, l < alpha = m + 2), so
along tw the reads are m apart, and from one row of tiles to the next the step is m image rows: no
single stride. Space-to-depth fixes both. Copy each phase sub-image (winograd.py explains the
phases), zero-padded, into m*m planes

    xs[rho*m + sigma][q*TW + r] = x_sub[m*q + rho, m*r + sigma]        TW = tiles_w + 1

and value (k, l) of tile (th, tw) is xs[(k % m)*m + l % m][f + (k // m)*TW + l // m] with
f = th*TW + tw: for each (k, l) a contiguous run over f, every tile of the phase in one loop. The
price is one tile in each row of tiles that is not a tile (tw = tiles_w, which the row stride TW
has to include): V, M and Z carry it through the GEMMs, a waste of 1/tiles_w (12% at 8 tiles a row,
6% at 16), and the output transform drops it. So winograd.py takes strips only on maps wide enough
(STRIPS_MIN_TILES_W).

Then every transform is the per-tile nesting done a whole row of tiles at a time, each 1-D
transform as one loop per output row, e.g. for the input's first stage, column l:

    for f in range(L):  T1[0*alpha + l][f] = 36 * (d_0l[f] + d_4l[f]) - 97 * d_2l[f]

and LLVM vectorises those (few streams each, unit stride, long). The data movement that is left is
the space-to-depth copy of x (and of dy, whose 4 x 4 tiles for dw do not overlap: its copy is the
gathered tiles) and the depth-to-space copy of the output tiles into y: one read and one write
per pixel. Each value is the same sum in the same order as in winograd.py's per-tile loops, so the
two give equal results bit for bit (tests/ops/test_conv2d_winograd.py).

The tile arrays are passed as winograd._planes' underlying (alpha^2, C*T + 16) buffer, `rows`, with
T = `columns` tiles per channel: row xi, column c*T + t. The constants k are a tuple of scalars
in the dtype (read from an array in a loop that stores, LLVM would reload them after each store).
"""

import numpy as np
from numba import njit, prange, uint64

from . import space_to_batch as stb


def table(phase_table):
    """The strips' tile numbering: the phase table with BASE counting tiles_h * (tiles_w + 1) per
    phase (the extra tile per row of tiles), and the tiles per image that makes."""
    strips = phase_table.copy()
    sizes = phase_table[:, stb.TILES_H] * (phase_table[:, stb.TILES_W] + 1)
    strips[:, stb.BASE] = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return strips, int(sizes.sum())


# ---------------------------------------------------------------- 1-D transforms of whole rows
# dst[q_r, d + f] for f < count, from src[r_k, s_k + f]: one loop per output row. The rows are
# passed as (array, row index), not as row views: each view Numba makes is a reference count taken
# and dropped with an atomic instruction, and with one per row per phase those atomics were 60% of
# the time (perf, 2 x 256 x 17 x 17 dilation 2). The offsets are unsigned: with a signed index
# Numba adds "if negative, count from the end" to every access, and LLVM then gathers element by
# element instead of loading a vector (1.6 against 0.3 ns an element, measured on one such loop).

@njit(cache=True, inline="always")
def _bt4_rows(src, r0, s0, r1, s1, r2, s2, r3, s3, r4, s4, r5, s5, dst, q0, q1, q2, q3, q4, q5, d, count, k):
    """B^T d for F(4, 3) (the per-tile loops' sums, in their order)."""
    s0, s1, s2, s3, s4, s5, d = uint64(s0), uint64(s1), uint64(s2), uint64(s3), uint64(s4), uint64(s5), uint64(d)
    c8, c12, c18, c27, c36, c97 = k
    for f in range(count):
        u = uint64(f)
        dst[q0, d + u] = c36 * (src[r0, s0 + u] + src[r4, s4 + u]) - c97 * src[r2, s2 + u]
    for f in range(count):
        u = uint64(f)
        d1, d2, d3, d4 = src[r1, s1 + u], src[r2, s2 + u], src[r3, s3 + u], src[r4, s4 + u]
        dst[q1, d + u] = (c18 * d4 - c8 * d2) + (c27 * d3 - c12 * d1)
    for f in range(count):
        u = uint64(f)
        d1, d2, d3, d4 = src[r1, s1 + u], src[r2, s2 + u], src[r3, s3 + u], src[r4, s4 + u]
        dst[q2, d + u] = (c18 * d4 - c8 * d2) - (c27 * d3 - c12 * d1)
    for f in range(count):
        u = uint64(f)
        d1, d2, d3, d4 = src[r1, s1 + u], src[r2, s2 + u], src[r3, s3 + u], src[r4, s4 + u]
        dst[q3, d + u] = (c12 * d4 - c27 * d2) + (c8 * d3 - c18 * d1)
    for f in range(count):
        u = uint64(f)
        d1, d2, d3, d4 = src[r1, s1 + u], src[r2, s2 + u], src[r3, s3 + u], src[r4, s4 + u]
        dst[q4, d + u] = (c12 * d4 - c27 * d2) - (c8 * d3 - c18 * d1)
    for f in range(count):
        u = uint64(f)
        dst[q5, d + u] = c36 * (src[r1, s1 + u] + src[r5, s5 + u]) - c97 * src[r3, s3 + u]


@njit(cache=True, inline="always")
def _bt2_rows(src, r0, s0, r1, s1, r2, s2, r3, s3, dst, q0, q1, q2, q3, d, count):
    """B^T d for F(2, 3)."""
    s0, s1, s2, s3, d = uint64(s0), uint64(s1), uint64(s2), uint64(s3), uint64(d)
    for f in range(count):
        u = uint64(f)
        dst[q0, d + u] = src[r0, s0 + u] - src[r2, s2 + u]
    for f in range(count):
        u = uint64(f)
        dst[q1, d + u] = src[r1, s1 + u] + src[r2, s2 + u]
    for f in range(count):
        u = uint64(f)
        dst[q2, d + u] = src[r2, s2 + u] - src[r1, s1 + u]
    for f in range(count):
        u = uint64(f)
        dst[q3, d + u] = src[r1, s1 + u] - src[r3, s3 + u]


@njit(cache=True, inline="always")
def _at4_rows(src, r0, r1, r2, r3, r4, r5, s, dst, q0, q1, q2, q3, d, count, k):
    """A^T m for F(4, 3)."""
    s, d = uint64(s), uint64(d)
    c8, c12, c18, c27 = k[0], k[1], k[2], k[3]
    for f in range(count):
        u = uint64(f)
        m1, m2, m3, m4 = src[r1, s + u], src[r2, s + u], src[r3, s + u], src[r4, s + u]
        dst[q0, d + u] = src[r0, s + u] + c8 * (m1 + m2) + c27 * (m3 + m4)
    for f in range(count):
        u = uint64(f)
        dst[q1, d + u] = c12 * (src[r1, s + u] - src[r2, s + u]) + c18 * (src[r3, s + u] - src[r4, s + u])
    for f in range(count):
        u = uint64(f)
        dst[q2, d + u] = c18 * (src[r1, s + u] + src[r2, s + u]) + c12 * (src[r3, s + u] + src[r4, s + u])
    for f in range(count):
        u = uint64(f)
        m1, m2, m3, m4 = src[r1, s + u], src[r2, s + u], src[r3, s + u], src[r4, s + u]
        dst[q3, d + u] = c27 * (m1 - m2) + c8 * (m3 - m4) + src[r5, s + u]


@njit(cache=True, inline="always")
def _at2_rows(src, r0, r1, r2, r3, s, dst, q0, q1, d, count):
    """A^T m for F(2, 3)."""
    s, d = uint64(s), uint64(d)
    for f in range(count):
        u = uint64(f)
        dst[q0, d + u] = src[r0, s + u] + src[r1, s + u] + src[r2, s + u]
    for f in range(count):
        u = uint64(f)
        dst[q1, d + u] = src[r1, s + u] - src[r2, s + u] - src[r3, s + u]


@njit(cache=True, inline="always")
def _a4_rows(src, r0, r1, r2, r3, s, dst, q0, q1, q2, q3, q4, q5, d, count, k):
    """A e for F(4, 3): the adjoint of the output transform."""
    s, d = uint64(s), uint64(d)
    c8, c12, c18, c27 = k[0], k[1], k[2], k[3]
    for f in range(count):
        u = uint64(f)
        dst[q0, d + u] = src[r0, s + u]
    for f in range(count):
        u = uint64(f)
        dst[q1, d + u] = (c8 * src[r0, s + u] + c18 * src[r2, s + u]) + (c12 * src[r1, s + u] + c27 * src[r3, s + u])
    for f in range(count):
        u = uint64(f)
        dst[q2, d + u] = (c8 * src[r0, s + u] + c18 * src[r2, s + u]) - (c12 * src[r1, s + u] + c27 * src[r3, s + u])
    for f in range(count):
        u = uint64(f)
        dst[q3, d + u] = (c27 * src[r0, s + u] + c12 * src[r2, s + u]) + (c18 * src[r1, s + u] + c8 * src[r3, s + u])
    for f in range(count):
        u = uint64(f)
        dst[q4, d + u] = (c27 * src[r0, s + u] + c12 * src[r2, s + u]) - (c18 * src[r1, s + u] + c8 * src[r3, s + u])
    for f in range(count):
        u = uint64(f)
        dst[q5, d + u] = src[r3, s + u]


@njit(cache=True, inline="always")
def _a2_rows(src, r0, r1, s, dst, q0, q1, q2, q3, d, count):
    """A e for F(2, 3)."""
    s, d = uint64(s), uint64(d)
    for f in range(count):
        u = uint64(f)
        dst[q0, d + u] = src[r0, s + u]
    for f in range(count):
        u = uint64(f)
        dst[q1, d + u] = src[r0, s + u] + src[r1, s + u]
    for f in range(count):
        u = uint64(f)
        dst[q2, d + u] = src[r0, s + u] - src[r1, s + u]
    for f in range(count):
        u = uint64(f)
        dst[q3, d + u] = -src[r1, s + u]


# ---------------------------------------------------------------- input transform: x -> V

def sources(strip_table, H, W, dilation, m):
    """Where each value of the space-to-depth planes comes from, for every phase: (phases, m*m, most)
    int64, sources[p, rho*m + sigma, q*TW + col] = the offset in an (H, W) image plane of sub-image
    pixel (qh + m*q + rho, qw + m*col + sigma), or -1 for a zero: outside the sub-image, and beyond
    what the phase's real tiles read (m*tiles + 2 rows and columns), so that the extra tile of each
    row of tiles reads nothing no real tile reads. One more -1 at the end of each plane: the extra
    tile of the last row reads one past it (V must stay finite: dw multiplies that tile by the zero
    of Z's, and 0 * nan is nan). Made with NumPy once per call; the loop then only gathers."""
    dh, dw = dilation
    sizes = (strip_table[:, stb.TILES_H] + 1) * (strip_table[:, stb.TILES_W] + 1) + 1
    out = np.full((len(strip_table), m * m, int(sizes.max(initial=1))), -1, dtype=np.int64)
    for p, row in enumerate(strip_table):
        r, s, hr, wr, qh, qw = (int(row[i]) for i in (stb.R, stb.S, stb.HR, stb.WR, stb.QH, stb.QW))
        tiles_h, tiles_w = int(row[stb.TILES_H]), int(row[stb.TILES_W])
        u = m * np.arange(tiles_h + 1)[None, :] + np.arange(m)[:, None]            # (rho, q)
        v = m * np.arange(tiles_w + 1)[None, :] + np.arange(m)[:, None]            # (sigma, col)
        rows_ok = (qh + u >= 0) & (qh + u < hr) & (u < m * tiles_h + 2)
        columns_ok = (qw + v >= 0) & (qw + v < wr) & (v < m * tiles_w + 2)
        offsets = (r + dh * (qh + u))[:, None, :, None] * W + (s + dw * (qw + v))[None, :, None, :]
        inside = rows_ok[:, None, :, None] & columns_ok[None, :, None, :]
        out[p, :, :sizes[p] - 1] = np.where(inside, offsets, -1).reshape(m * m, -1)
    return out


def targets(strip_table, dilation, m):
    """Where each finished output value goes (or, for dw, which dy value each E entry is), for every
    phase: (rows, columns), two (phases, m*m, most) int64 arrays, for entry [p, i*m + j, th*TW + tw]
    the pixel (a + dh*(m*th + i), b + dw*(m*tw + j)) of y, or -1 where it lies outside y and for the
    extra tile of each row. One flat loop then scatters (or gathers) a phase, instead of a short
    loop per row of tiles and output row: those were half of the output transform's time."""
    dh, dw = dilation
    sizes = strip_table[:, stb.TILES_H] * (strip_table[:, stb.TILES_W] + 1)
    shape = (len(strip_table), m * m, int(sizes.max(initial=1)))
    rows, columns = np.full(shape, -1, dtype=np.int64), np.full(shape, -1, dtype=np.int64)
    for p, row in enumerate(strip_table):
        a, b, oha, owb = (int(row[i]) for i in (stb.A, stb.B, stb.OHA, stb.OWB))
        tiles_h, tiles_w = int(row[stb.TILES_H]), int(row[stb.TILES_W])
        oi = m * np.arange(tiles_h)[None, :] + np.arange(m)[:, None]               # (i, th)
        oj = m * np.arange(tiles_w + 1)[None, :] + np.arange(m)[:, None]           # (j, tw)
        inside = (oi < oha)[:, None, :, None] & ((oj < owb) & (np.arange(tiles_w + 1) < tiles_w))[None, :, None, :]
        h = np.broadcast_to((a + dh * oi)[:, None, :, None], inside.shape)
        w = np.broadcast_to((b + dw * oj)[None, :, None, :], inside.shape)
        rows[p, :, :sizes[p]] = np.where(inside, h, -1).reshape(m * m, -1)
        columns[p, :, :sizes[p]] = np.where(inside, w, -1).reshape(m * m, -1)
    return rows, columns


@njit(cache=True, inline="always")
def _space_to_depth(x_flat, base, sources, p, size, xs):
    """xs[plane, f] = x's plane (at x_flat[base:]) at sources[p, plane, f], or 0 where that is -1."""
    for plane in range(sources.shape[1]):
        for f in range(size):
            i = sources[p, plane, f]
            xs[plane, uint64(f)] = x_flat[uint64(base + i)] if i >= 0 else 0


@njit(cache=True, inline="always")
def _input_phase(xs, T1, V, dst, L, TW, m, k):
    """V[:, dst:dst + L] = B^T d B of the phase's tiles, from its space-to-depth planes xs."""
    alpha = m + 2
    for l in range(alpha):          # B^T d: B^T over each column l of the tiles (their rows k)
        p, o = l % m, l // m        # value (k, l) is xs[(k % m)*m + p] at f + (k // m)*TW + o
        if m == 4:
            _bt4_rows(xs, p, o, 4 + p, o, 8 + p, o, 12 + p, o, p, TW + o, 4 + p, TW + o,
                      T1, l, 6 + l, 12 + l, 18 + l, 24 + l, 30 + l, 0, L, k)
        else:
            _bt2_rows(xs, p, o, 2 + p, o, p, TW + o, 2 + p, TW + o, T1, l, 4 + l, 8 + l, 12 + l, 0, L)
    for i in range(alpha):          # (B^T d) B: B^T over each row i
        a = i * alpha
        if m == 4:
            _bt4_rows(T1, a, 0, a + 1, 0, a + 2, 0, a + 3, 0, a + 4, 0, a + 5, 0,
                      V, a, a + 1, a + 2, a + 3, a + 4, a + 5, dst, L, k)
        else:
            _bt2_rows(T1, a, 0, a + 1, 0, a + 2, 0, a + 3, 0, V, a, a + 1, a + 2, a + 3, dst, L)


@njit(cache=True, inline="always")
def _input_channel(x_flat, shape, V, columns, c, table, tiles_per_image, sources, m, k, xs, T1):
    N, C, H, W = shape
    for n in range(N):
        for p in range(table.shape[0]):
            tiles_h, tiles_w = table[p, stb.TILES_H], table[p, stb.TILES_W]
            _space_to_depth(x_flat, (n * C + c) * H * W, sources, p, (tiles_h + 1) * (tiles_w + 1) + 1, xs)
            dst = c * columns + n * tiles_per_image + table[p, stb.BASE]
            _input_phase(xs, T1, V, dst, tiles_h * (tiles_w + 1), tiles_w + 1, m, k)


@njit(cache=True, inline="always")
def _input_scratch(sources, m, dtype):
    return np.empty((m * m, sources.shape[2]), dtype=dtype), np.empty(((m + 2) ** 2, sources.shape[2]), dtype=dtype)


@njit(cache=True, nogil=True)
def input_serial(x, V, columns, table, tiles_per_image, sources, m, k):
    """V[:, c*columns + t] = B^T d B of every tile t of x (g, C, H, W), with table() and sources()."""
    xs, T1 = _input_scratch(sources, m, x.dtype)
    x_flat = x.reshape(-1)
    for c in range(x.shape[1]):
        _input_channel(x_flat, x.shape, V, columns, c, table, tiles_per_image, sources, m, k, xs, T1)


@njit(cache=True, parallel=True)
def input_parallel(x, V, columns, table, tiles_per_image, sources, m, k):
    x_flat = x.reshape(-1)
    for c in prange(x.shape[1]):
        xs, T1 = _input_scratch(sources, m, x.dtype)
        _input_channel(x_flat, x.shape, V, columns, c, table, tiles_per_image, sources, m, k, xs, T1)


# ---------------------------------------------------------------- output transform: M -> y

@njit(cache=True, inline="always")
def _output_channel(M, columns, y, co, table, tiles_per_image, rows, columns_, m, k, S, Y):
    alpha = m + 2
    for n in range(y.shape[0]):
        for p in range(table.shape[0]):
            L = table[p, stb.TILES_H] * (table[p, stb.TILES_W] + 1)
            src = co * columns + n * tiles_per_image + table[p, stb.BASE]
            for j in range(alpha):      # A^T M: A^T over each column j of the tiles
                if m == 4:
                    _at4_rows(M, j, 6 + j, 12 + j, 18 + j, 24 + j, 30 + j, src, S, j, 6 + j, 12 + j, 18 + j, 0, L, k)
                else:
                    _at2_rows(M, j, 4 + j, 8 + j, 12 + j, src, S, j, 4 + j, 0, L)
            for i in range(m):          # (A^T M) A: A^T over each row i
                a_ = i * alpha
                if m == 4:
                    _at4_rows(S, a_, a_ + 1, a_ + 2, a_ + 3, a_ + 4, a_ + 5, 0,
                              Y, 4 * i, 4 * i + 1, 4 * i + 2, 4 * i + 3, 0, L, k)
                else:
                    _at2_rows(S, a_, a_ + 1, a_ + 2, a_ + 3, 0, Y, 2 * i, 2 * i + 1, 0, L)
            for plane in range(m * m):  # depth to space: the parts of the tiles inside y
                for f in range(L):
                    h = rows[p, plane, f]
                    if h >= 0:
                        y[n, co, uint64(h), uint64(columns_[p, plane, f])] = Y[plane, uint64(f)]


@njit(cache=True, inline="always")
def _output_scratch(table, m, dtype):
    most = (table[:, stb.TILES_H] * (table[:, stb.TILES_W] + 1)).max()
    return np.empty((m * (m + 2), most), dtype=dtype), np.empty((m * m, most), dtype=dtype)


@njit(cache=True, nogil=True)
def output_serial(M, columns, y, table, tiles_per_image, targets, m, k):
    """y (g, C_out, OH, OW) from the tiles M[:, co*columns + t] (Y = A^T M A), table from table()."""
    S, Y = _output_scratch(table, m, y.dtype)
    for co in range(y.shape[1]):
        _output_channel(M, columns, y, co, table, tiles_per_image, targets[0], targets[1], m, k, S, Y)


@njit(cache=True, parallel=True)
def output_parallel(M, columns, y, table, tiles_per_image, targets, m, k):
    for co in prange(y.shape[1]):
        S, Y = _output_scratch(table, m, y.dtype)
        _output_channel(M, columns, y, co, table, tiles_per_image, targets[0], targets[1], m, k, S, Y)


# ---------------------------------------------------------------- dw's transform: dy -> Z

@njit(cache=True, inline="always")
def _grad_channel(dy, Z, columns, co, table, tiles_per_image, rows, columns_, m, k, E, S):
    alpha = m + 2
    for n in range(dy.shape[0]):
        for p in range(table.shape[0]):
            L = table[p, stb.TILES_H] * (table[p, stb.TILES_W] + 1)
            for plane in range(m * m):  # space to depth: E[i*m + j, th*TW + tw] = the tile's dy (0 outside)
                for f in range(L):
                    h = rows[p, plane, f]
                    E[plane, uint64(f)] = dy[n, co, uint64(h), uint64(columns_[p, plane, f])] if h >= 0 else 0
            dst = co * columns + n * tiles_per_image + table[p, stb.BASE]
            for j in range(m):          # A e: A over each column j
                if m == 4:
                    _a4_rows(E, j, 4 + j, 8 + j, 12 + j, 0, S, j, 4 + j, 8 + j, 12 + j, 16 + j, 20 + j, 0, L, k)
                else:
                    _a2_rows(E, j, 2 + j, 0, S, j, 2 + j, 4 + j, 6 + j, 0, L)
            for r in range(alpha):      # (A e) A^T: A over each row r
                a_, z = r * m, r * alpha
                if m == 4:
                    _a4_rows(S, a_, a_ + 1, a_ + 2, a_ + 3, 0, Z, z, z + 1, z + 2, z + 3, z + 4, z + 5, dst, L, k)
                else:
                    _a2_rows(S, a_, a_ + 1, 0, Z, z, z + 1, z + 2, z + 3, dst, L)


@njit(cache=True, inline="always")
def _grad_scratch(table, m, dtype):
    most = (table[:, stb.TILES_H] * (table[:, stb.TILES_W] + 1)).max()
    return np.empty((m * m, most), dtype=dtype), np.empty(((m + 2) * m, most), dtype=dtype)


@njit(cache=True, nogil=True)
def grad_serial(dy, Z, columns, table, tiles_per_image, targets, m, k):
    """Z[:, co*columns + t] = A e A^T for every m x m tile e of dy (zero outside, and zero for the
    extra tile of each row, so that it adds nothing to dU), table from table()."""
    E, S = _grad_scratch(table, m, dy.dtype)
    for co in range(dy.shape[1]):
        _grad_channel(dy, Z, columns, co, table, tiles_per_image, targets[0], targets[1], m, k, E, S)


@njit(cache=True, parallel=True)
def grad_parallel(dy, Z, columns, table, tiles_per_image, targets, m, k):
    for co in prange(dy.shape[1]):
        E, S = _grad_scratch(table, m, dy.dtype)
        _grad_channel(dy, Z, columns, co, table, tiles_per_image, targets[0], targets[1], m, k, E, S)
