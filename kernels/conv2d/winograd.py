"""conv2d by Winograd's minimal filtering, F(2x2, 3x3) and F(4x4, 3x3): 3x3 kernels, stride 1, any dilation.

1-D first. F(m, r) computes m outputs of an r-tap correlation, y[i] = sum_k g[k] d[i + k], from
alpha = m + r - 1 inputs with alpha multiplications instead of m*r. Read y as the coefficients of
the polynomial product y(X) = g(X) d(X) (reversed, for a correlation): evaluate g and d at alpha
points, multiply the values (alpha multiplications: the only ones that depend on both), interpolate
back. As matrices (Lavin & Gray 2016, eq. 4):

    y = A^T [ (G g) * (B^T d) ]         g (3,), d (alpha,), y (m,); * is elementwise

G evaluates the filter at the points, B^T the data (with the correction that makes it exact for
correlation), A^T interpolates. F(2, 3), points 0, 1, -1 and infinity (4 multiplications, not 6):

    B^T = [[1, 0,-1, 0],     G = [[  1,   0,   0],     A^T = [[1, 1, 1, 0],
           [0, 1, 1, 0],          [1/2, 1/2, 1/2],            [0, 1,-1,-1]]
           [0,-1, 1, 0],          [1/2,-1/2, 1/2],
           [0, 1, 0,-1]]          [  0,   0,   1]]

F(4, 3), points 0, 3/2, -3/2, 2/3, -2/3 and infinity (6 multiplications, not 12), each column of
A^T and row of B^T scaled so that both are integers (the scales go into G, which is applied in
float64 to the weights; a scaling moves nothing in exact arithmetic):

    B^T = [[36,  0,-97,  0, 36,  0],     G = 1/4680 [[130,  0,   0],     A^T = [[1,  8,  8, 27, 27, 0],
           [ 0,-12, -8, 27, 18,  0],                 [  4,  6,   9],            [0, 12,-12, 18,-18, 0],
           [ 0, 12, -8,-27, 18,  0],                 [  4, -6,   9],            [0, 18, 18, 12, 12, 0],
           [ 0,-18,-27,  8, 12,  0],                 [ -9, -6,  -4],            [0, 27,-27,  8, -8, 1]]
           [ 0, 18,-27, -8, 12,  0],                 [ -9,  6,  -4],
           [ 0, 36,  0,-97,  0, 36]]                 [  0,  0, 130]]

(Column j of A^T is 8 or 27 times (1, p, p^2, p^3) for p = +-3/2, +-2/3.) Lavin & Gray's F(4, 3) uses
the points 0, +-1, +-2: B^T = [[4, 0,-5, 0, 1, 0], [0,-4,-4, 1, 1, 0], ...], A^T with columns
(1, +-2, 4, +-8). Its float32 error is 4x larger (below): the rows of A^T for the points +-2 grow as 2^i
while those for +-1 do not, so the final sum cancels terms of very different sizes. Points that are
reciprocal pairs (p, 1/p), here 3/2 and 2/3, keep the rows balanced; Barabasz, Anderson, Soodhalter &
Gregg (2018) make this argument, and among the points 0 and four of +-1, +-2, +-1/2, +-1/4, +-3/2,
+-2/3, +-3, +-4 these measured the most accurate (a float32 simulation, C = 128 channels, 18 x 18 maps:
1.6e-6 against 7.6e-6 for 0, +-1, +-2 and 2.4e-6 for the next best set).

2-D by nesting (the 1-D algorithm along rows, then along columns): for an alpha x alpha input tile
d and a 3x3 filter g, the m x m output tile is

    Y = A^T [ (G g G^T) * (B^T d B) ] A

alpha^2 multiplications per tile instead of m^2 * 9: F(2x2, 3x3) 16 instead of 36 (2.25x fewer),
F(4x4, 3x3) 36 instead of 144 (4x fewer). Tiles overlap by 2 pixels and cover the output in
steps of m. Summed over input channels, the elementwise product becomes one matrix product per
transformed position xi = (i, j), which is where the time goes (the BLAS does it):

    U = G g G^T     (alpha^2, C_out, C_in)       filter transform, once per call
    V = B^T d B     (alpha^2, C_in, T)           input transform, T tiles (of a group of images)
    M = U @ V       (alpha^2, C_out, T)          alpha^2 GEMMs of C_out x C_in x T
    Y = A^T M A     -> y (N, C_out, OH, OW)      output transform

Backward (the same three transforms, no new algorithm):
    dx: a stride-1 3x3 convolution of dy with the flipped, transposed kernel w'[c, co] = w[co, c, ::-1, ::-1],
        padding 2*d - p per axis (d the dilation), output size H x W: Winograd forward again, and its
        transformed kernel is the forward's U, planes reordered and transposed (FLIP_ORDER, below).
    dw: the adjoint of the forward in U. With Z = A dY A^T per output tile (alpha^2, C_out, T),
        dU = Z @ V^T (alpha^2 GEMMs of C_out x T x C_in, summed over tiles), dw = G^T dU G.
Dilation goes through space_to_batch.py: the loops read the phase sub-image x[:, :, r::d, s::d] and
write y[:, :, a::d, b::d] in place, so a dilated conv is the same tiles on smaller images.

Numerics (float32, measured against the float64 reference on PSPNet's 3x3 layer shapes, see
tests/ops/test_conv2d_winograd.py and benchmarks/README.md): the largest error relative to the
output's largest magnitude, max|y - y64| / max|y64|, of y, dx and dw, batch 2, He-initialised weights:

    im2col   2.2e-7 .. 8.1e-7        ERROR_BOUND (what the tests hold): 2e-6
    F(2x2)   3.2e-7 .. 8.5e-7                                            3e-6
    F(4x4)   8.4e-7 .. 3.2e-6                                            1e-5
             (4.4e-6 .. 1.2e-5 with the points 0, +-1, +-2)

F(2x2) is as accurate as im2col; F(4x4) loses about half a decimal digit: the transformed values
are larger than the result that their sum cancels down to, and float32 rounding of those large terms
(most of it in the GEMM's sums over channels) is what remains. Through a whole network this shows:
PSPNet-18's float32 parameter gradients (tests/models' parity check, 33 px) are 5.6e-5 from float64
in relative L2 with F(4x4) forced everywhere (F(2x2) 3.2e-5, torch 2.8e-5; the check allows 2e-4); with
the points 0, +-1, +-2 they were 6e-4, and F(4x4) could not be the default.
Ref: Winograd 1980; Lavin & Gray, Fast Algorithms for Convolutional Neural Networks, CVPR 2016.
"""

import collections
import functools

import numpy as np
from numba import njit, prange, uint64

from . import space_to_batch as stb
from . import threads
from . import winograd_gather as gather
from . import winograd_strips as strips

# float64, as printed above; the filter transforms use them as they are, the tile loops hard-code them
MATRICES = {
    2: dict(BT=np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64),
            G=np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]]),
            AT=np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)),
    4: dict(BT=np.array([[36, 0, -97, 0, 36, 0], [0, -12, -8, 27, 18, 0], [0, 12, -8, -27, 18, 0],
                         [0, -18, -27, 8, 12, 0], [0, 18, -27, -8, 12, 0], [0, 36, 0, -97, 0, 36]], dtype=np.float64),
            G=np.array([[130, 0, 0], [4, 6, 9], [4, -6, 9], [-9, -6, -4], [-9, 6, -4], [0, 0, 130]]) / 4680,
            AT=np.array([[1, 8, 8, 27, 27, 0], [0, 12, -12, 18, -18, 0], [0, 18, 18, 12, 12, 0],
                         [0, 27, -27, 8, -8, 1]], dtype=np.float64)),
}

# max|y - y64| / max|y64| in float32 (measured: see the module docstring)
ERROR_BOUND = {"im2col": 2e-6, 2: 3e-6, 4: 1e-5}

# Bytes of V (one group's transformed input) per GEMM batch: a few MB keeps V and M in the cache
# between the transform that writes them and the GEMM that reads them; small maps go as one group.
TILES_BUDGET = 8 << 20
# A transform loop runs in parallel (prange over channels) only above this many elements of V (1 MB):
# on gradient checks' tiny arrays waking the threads costs more than the work. Above it the transforms
# are most of a Winograd conv's time and the GEMMs already use both cores; measured 2026-12-02 on 2
# cores, load ~1, 8 x 64 x 64 x 64 dilation 2, forward + dx + dw: F(2x2) 104 ms serial transforms,
# 75 ms parallel; F(4x4) 50 and 45 ms. (On 2026-12-01, at load 4-12, the serial loops were faster:
# a parallel loop waits for its slowest thread, and one not scheduled stalls it.)
PARALLEL_MIN_SIZE = 1 << 18

# One image per worker thread, each with a one-thread BLAS (threads.py), for a call with at least
# THREADED_MIN_IMAGES_PER_WORKER images a worker, THREADED_MIN_TILES tiles an image, at most
# THREADED_FILTER_BYTES of transformed filter (THREADED_WEIGHT_GRAD_BYTES for dw) and
# PARALLEL_MIN_SIZE elements of V in all: no barrier between the transforms and the GEMMs.
# Measured 2026-12-02 in a PSPNet-18 step (batch 8, 129 px, 2 cores, OPENBLAS_CORETYPE unset, per
# layer over 6 alternating steps) against the prange + BLAS threads path: 64 channels at 65 and 33 px
# (289 and 81 tiles of F(4x4) an image) 1.1-1.8x faster; at 17 px (25 tiles an image) 0.7-0.9x at
# 128-256 channels (each image's GEMMs too small for one thread to beat two); 8 x 64 x 64 x 64
# dilation 2 alone 1.8x (25 against 45 ms). Large filters would have each image's GEMMs read all of
# U, and dw add one dU per image. With one image a worker (batch 2 on 2 cores) an imbalance leaves a
# core idle: a PSPNet-18 step at batch 2 measured 0.51 s against 0.485 s the old way.
THREADED_MIN_TILES = 64
THREADED_MIN_IMAGES_PER_WORKER = 2
THREADED_FILTER_BYTES = 10 << 20
THREADED_WEIGHT_GRAD_BYTES = 5 << 20


# ---------------------------------------------------------------- 1-D transforms (hard-coded matrices)
# k holds the constants 8, 12, 18, 27, 36, 97 in the array's dtype: a literal 8 times a float32 is
# float64 in Numba. They are integers, so exact in float32 too.

@njit(cache=True, inline="always")
def _bt4(d0, d1, d2, d3, d4, d5, k):
    """B^T d for F(4, 3)."""
    c8, c12, c18, c27, c36, c97 = k[0], k[1], k[2], k[3], k[4], k[5]
    a, b = c18 * d4 - c8 * d2, c27 * d3 - c12 * d1
    c, e = c12 * d4 - c27 * d2, c8 * d3 - c18 * d1
    return c36 * (d0 + d4) - c97 * d2, a + b, a - b, c + e, c - e, c36 * (d1 + d5) - c97 * d3


@njit(cache=True, inline="always")
def _at4(m0, m1, m2, m3, m4, m5, k):
    """A^T m for F(4, 3)."""
    c8, c12, c18, c27 = k[0], k[1], k[2], k[3]
    p, q, r, s = m1 + m2, m1 - m2, m3 + m4, m3 - m4
    return m0 + c8 * p + c27 * r, c12 * q + c18 * s, c18 * p + c12 * r, c27 * q + c8 * s + m5


@njit(cache=True, inline="always")
def _a4(e0, e1, e2, e3, k):
    """A e for F(4, 3): the adjoint of the output transform (dy tile -> alpha values)."""
    c8, c12, c18, c27 = k[0], k[1], k[2], k[3]
    p, q = c8 * e0 + c18 * e2, c12 * e1 + c27 * e3
    p2, q2 = c27 * e0 + c12 * e2, c18 * e1 + c8 * e3
    return e0, p + q, p - q, p2 + q2, p2 - q2, e3


@njit(cache=True, inline="always")
def _bt2(d0, d1, d2, d3):
    """B^T d for F(2, 3)."""
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


@njit(cache=True, inline="always")
def _at2(m0, m1, m2, m3):
    """A^T m for F(2, 3)."""
    return m0 + m1 + m2, m1 - m2 - m3


@njit(cache=True, inline="always")
def _a2(e0, e1):
    """A e for F(2, 3)."""
    return e0, e0 + e1, e0 - e1, -e1


# ---------------------------------------------------------------- one channel plane, all tiles of a group

@njit(cache=True, inline="always")
def _value(x, n, c, h, w, inside):
    """x[n, c, h, w], or 0 where the tile hangs over the edge (the zero padding)."""
    return x[n, c, h, w] if inside else x.dtype.type(0)


@njit(cache=True, inline="always")
def _row6(x, n, c, h, row_ok, w, dw, col_ok):
    """Six values of one row of a tile: x[n, c, h, w + dw*j] for j < 6, zero outside."""
    return (_value(x, n, c, h, w, row_ok and col_ok[0]), _value(x, n, c, h, w + dw, row_ok and col_ok[1]),
            _value(x, n, c, h, w + 2 * dw, row_ok and col_ok[2]), _value(x, n, c, h, w + 3 * dw, row_ok and col_ok[3]),
            _value(x, n, c, h, w + 4 * dw, row_ok and col_ok[4]), _value(x, n, c, h, w + 5 * dw, row_ok and col_ok[5]))


@njit(cache=True, inline="always")
def _row4(x, n, c, h, row_ok, w, dw, col_ok):
    return (_value(x, n, c, h, w, row_ok and col_ok[0]), _value(x, n, c, h, w + dw, row_ok and col_ok[1]),
            _value(x, n, c, h, w + 2 * dw, row_ok and col_ok[2]), _value(x, n, c, h, w + 3 * dw, row_ok and col_ok[3]))


@njit(cache=True, inline="always")
def _input_tile4(x, V, n, c, tile, h0, dh, hr, u0, w0, dw, wr, v0, k):
    """V[:, c, tile] = B^T d B for the 6 x 6 tile d whose corner is sub-image pixel (u0, v0)."""
    col_ok = (0 <= v0 < wr, 0 <= v0 + 1 < wr, 0 <= v0 + 2 < wr, 0 <= v0 + 3 < wr, 0 <= v0 + 4 < wr,
              0 <= v0 + 5 < wr)
    w = w0 + dw * v0
    r0 = _row6(x, n, c, h0 + dh * u0, 0 <= u0 < hr, w, dw, col_ok)
    r1 = _row6(x, n, c, h0 + dh * (u0 + 1), 0 <= u0 + 1 < hr, w, dw, col_ok)
    r2 = _row6(x, n, c, h0 + dh * (u0 + 2), 0 <= u0 + 2 < hr, w, dw, col_ok)
    r3 = _row6(x, n, c, h0 + dh * (u0 + 3), 0 <= u0 + 3 < hr, w, dw, col_ok)
    r4 = _row6(x, n, c, h0 + dh * (u0 + 4), 0 <= u0 + 4 < hr, w, dw, col_ok)
    r5 = _row6(x, n, c, h0 + dh * (u0 + 5), 0 <= u0 + 5 < hr, w, dw, col_ok)
    # B^T d, one column at a time: column j of the result is t_j
    t0 = _bt4(r0[0], r1[0], r2[0], r3[0], r4[0], r5[0], k)
    t1 = _bt4(r0[1], r1[1], r2[1], r3[1], r4[1], r5[1], k)
    t2 = _bt4(r0[2], r1[2], r2[2], r3[2], r4[2], r5[2], k)
    t3 = _bt4(r0[3], r1[3], r2[3], r3[3], r4[3], r5[3], k)
    t4 = _bt4(r0[4], r1[4], r2[4], r3[4], r4[4], r5[4], k)
    t5 = _bt4(r0[5], r1[5], r2[5], r3[5], r4[5], r5[5], k)
    for i in range(6):          # (B^T d) B: row i of B^T d is (t0[i], ..., t5[i])
        row = _bt4(t0[i], t1[i], t2[i], t3[i], t4[i], t5[i], k)
        for j in range(6):
            V[i * 6 + j, c, tile] = row[j]


@njit(cache=True, inline="always")
def _input_tile4_inside(x, V, n, c, tile, h, dh, w, dw, k):
    """_input_tile4 for a tile that lies wholly inside the sub-image (corner at x[n, c, h, w]): no
    test per pixel. Most tiles of a large map are such; the tests cost as much as the arithmetic."""
    t0 = _column6(x, n, c, h, dh, w, k)
    t1 = _column6(x, n, c, h, dh, w + dw, k)
    t2 = _column6(x, n, c, h, dh, w + 2 * dw, k)
    t3 = _column6(x, n, c, h, dh, w + 3 * dw, k)
    t4 = _column6(x, n, c, h, dh, w + 4 * dw, k)
    t5 = _column6(x, n, c, h, dh, w + 5 * dw, k)
    for i in range(6):          # (B^T d) B
        row = _bt4(t0[i], t1[i], t2[i], t3[i], t4[i], t5[i], k)
        for j in range(6):
            V[i * 6 + j, c, tile] = row[j]


@njit(cache=True, inline="always")
def _column6(x, n, c, h, dh, col, k):
    """B^T times column `col` of a 6 x 6 tile inside x (rows h, h + dh, ..., h + 5 dh)."""
    return _bt4(x[n, c, h, col], x[n, c, h + dh, col], x[n, c, h + 2 * dh, col], x[n, c, h + 3 * dh, col],
                x[n, c, h + 4 * dh, col], x[n, c, h + 5 * dh, col], k)


@njit(cache=True, inline="always")
def _column4(x, n, c, h, dh, col):
    return _bt2(x[n, c, h, col], x[n, c, h + dh, col], x[n, c, h + 2 * dh, col], x[n, c, h + 3 * dh, col])


@njit(cache=True, inline="always")
def _input_tile2_inside(x, V, n, c, tile, h, dh, w, dw):
    """_input_tile2 for a tile wholly inside the sub-image."""
    t0 = _column4(x, n, c, h, dh, w)
    t1 = _column4(x, n, c, h, dh, w + dw)
    t2 = _column4(x, n, c, h, dh, w + 2 * dw)
    t3 = _column4(x, n, c, h, dh, w + 3 * dw)
    for i in range(4):
        row = _bt2(t0[i], t1[i], t2[i], t3[i])
        for j in range(4):
            V[i * 4 + j, c, tile] = row[j]


@njit(cache=True, inline="always")
def _input_tile2(x, V, n, c, tile, h0, dh, hr, u0, w0, dw, wr, v0):
    """V[:, c, tile] = B^T d B for the 4 x 4 tile d whose corner is sub-image pixel (u0, v0)."""
    col_ok = (0 <= v0 < wr, 0 <= v0 + 1 < wr, 0 <= v0 + 2 < wr, 0 <= v0 + 3 < wr)
    w = w0 + dw * v0
    r0 = _row4(x, n, c, h0 + dh * u0, 0 <= u0 < hr, w, dw, col_ok)
    r1 = _row4(x, n, c, h0 + dh * (u0 + 1), 0 <= u0 + 1 < hr, w, dw, col_ok)
    r2 = _row4(x, n, c, h0 + dh * (u0 + 2), 0 <= u0 + 2 < hr, w, dw, col_ok)
    r3 = _row4(x, n, c, h0 + dh * (u0 + 3), 0 <= u0 + 3 < hr, w, dw, col_ok)
    t0 = _bt2(r0[0], r1[0], r2[0], r3[0])
    t1 = _bt2(r0[1], r1[1], r2[1], r3[1])
    t2 = _bt2(r0[2], r1[2], r2[2], r3[2])
    t3 = _bt2(r0[3], r1[3], r2[3], r3[3])
    for i in range(4):
        row = _bt2(t0[i], t1[i], t2[i], t3[i])
        for j in range(4):
            V[i * 4 + j, c, tile] = row[j]


@njit(cache=True)
def _input_plane(x, V, c, table, tiles_per_image, dilation, m, k):
    """V[:, c, t] = B^T d B for every tile t of channel c of x (g, C, H, W), every phase of the table."""
    dh, dw = dilation
    for n in range(x.shape[0]):
        for p in range(table.shape[0]):
            r, s, hr, wr, qh, qw = table[p, stb.R], table[p, stb.S], table[p, stb.HR], table[p, stb.WR], \
                table[p, stb.QH], table[p, stb.QW]
            tiles_h, tiles_w = table[p, stb.TILES_H], table[p, stb.TILES_W]
            first = n * tiles_per_image + table[p, stb.BASE]
            alpha = m + 2
            for th in range(tiles_h):
                u0 = qh + th * m
                rows_inside = u0 >= 0 and u0 + alpha <= hr
                for tw in range(tiles_w):
                    tile = first + th * tiles_w + tw
                    v0 = qw + tw * m
                    if rows_inside and v0 >= 0 and v0 + alpha <= wr:
                        if m == 4:
                            _input_tile4_inside(x, V, n, c, tile, r + dh * u0, dh, s + dw * v0, dw, k)
                        else:
                            _input_tile2_inside(x, V, n, c, tile, r + dh * u0, dh, s + dw * v0, dw)
                    elif m == 4:
                        _input_tile4(x, V, n, c, tile, r, dh, hr, u0, s, dw, wr, v0, k)
                    else:
                        _input_tile2(x, V, n, c, tile, r, dh, hr, u0, s, dw, wr, v0)


@njit(cache=True)
def _output_plane(M, y, co, table, tiles_per_image, dilation, m, k):
    """y[:, co] (g, C_out, OH, OW) from the tiles M[:, co, t]: Y = A^T M A, the parts inside y."""
    alpha = m + 2
    s_ = np.empty((m, alpha), dtype=M.dtype)
    Y = np.empty((m, m), dtype=M.dtype)
    dh, dw = dilation
    for n in range(y.shape[0]):
        for p in range(table.shape[0]):
            a, b, oha, owb = table[p, stb.A], table[p, stb.B], table[p, stb.OHA], table[p, stb.OWB]
            tiles_h, tiles_w = table[p, stb.TILES_H], table[p, stb.TILES_W]
            first = n * tiles_per_image + table[p, stb.BASE]
            for th in range(tiles_h):
                for tw in range(tiles_w):
                    tile = first + th * tiles_w + tw
                    if m == 4:
                        for j in range(6):          # A^T M: each column
                            s_[0, j], s_[1, j], s_[2, j], s_[3, j] = _at4(
                                M[j, co, tile], M[6 + j, co, tile], M[12 + j, co, tile], M[18 + j, co, tile],
                                M[24 + j, co, tile], M[30 + j, co, tile], k)
                        for i in range(4):          # (A^T M) A: each row
                            Y[i, 0], Y[i, 1], Y[i, 2], Y[i, 3] = _at4(
                                s_[i, 0], s_[i, 1], s_[i, 2], s_[i, 3], s_[i, 4], s_[i, 5], k)
                    else:
                        for j in range(4):
                            s_[0, j], s_[1, j] = _at2(M[j, co, tile], M[4 + j, co, tile], M[8 + j, co, tile],
                                                      M[12 + j, co, tile])
                        for i in range(2):
                            Y[i, 0], Y[i, 1] = _at2(s_[i, 0], s_[i, 1], s_[i, 2], s_[i, 3])
                    for i in range(min(m, oha - th * m)):        # the part of the tile inside y
                        row = a + dh * (th * m + i)
                        for j in range(min(m, owb - tw * m)):
                            y[n, co, row, b + dw * (tw * m + j)] = Y[i, j]


@njit(cache=True)
def _grad_plane(dy, Z, co, table, tiles_per_image, dilation, m, k):
    """Z[:, co, t] = A e A^T for every m x m tile e of dy[:, co] (zero outside dy): dw's transform."""
    alpha = m + 2
    e = np.zeros((m, m), dtype=dy.dtype)
    s_ = np.empty((alpha, m), dtype=dy.dtype)
    dh, dw = dilation
    for n in range(dy.shape[0]):
        for p in range(table.shape[0]):
            a, b, oha, owb = table[p, stb.A], table[p, stb.B], table[p, stb.OHA], table[p, stb.OWB]
            tiles_h, tiles_w = table[p, stb.TILES_H], table[p, stb.TILES_W]
            first = n * tiles_per_image + table[p, stb.BASE]
            for th in range(tiles_h):
                for tw in range(tiles_w):
                    tile = first + th * tiles_w + tw
                    for i in range(m):
                        oi = th * m + i
                        for j in range(m):
                            oj = tw * m + j
                            inside = oi < oha and oj < owb
                            e[i, j] = dy[n, co, a + dh * oi, b + dw * oj] if inside else 0
                    if m == 4:
                        for j in range(4):          # A e: each column
                            s_[0, j], s_[1, j], s_[2, j], s_[3, j], s_[4, j], s_[5, j] = _a4(
                                e[0, j], e[1, j], e[2, j], e[3, j], k)
                        for i in range(6):          # (A e) A^T: each row
                            row = _a4(s_[i, 0], s_[i, 1], s_[i, 2], s_[i, 3], k)
                            for j in range(6):
                                Z[i * 6 + j, co, tile] = row[j]
                    else:
                        for j in range(2):
                            s_[0, j], s_[1, j], s_[2, j], s_[3, j] = _a2(e[0, j], e[1, j])
                        for i in range(4):
                            row = _a2(s_[i, 0], s_[i, 1])
                            for j in range(4):
                                Z[i * 4 + j, co, tile] = row[j]


# Each plane loop runs serially or in parallel over channels (prange): on small arrays (gradient
# checks, layer4's maps) waking the threads costs more than the work (see cpu.py's PARALLEL_MIN_SIZE).
@njit(cache=True, parallel=True)
def _input_parallel(x, V, table, tiles_per_image, dilation, m, k):
    for c in prange(x.shape[1]):
        _input_plane(x, V, c, table, tiles_per_image, dilation, m, k)


@njit(cache=True, nogil=True)
def _input_serial(x, V, table, tiles_per_image, dilation, m, k):
    for c in range(x.shape[1]):
        _input_plane(x, V, c, table, tiles_per_image, dilation, m, k)


@njit(cache=True, parallel=True)
def _output_parallel(M, y, table, tiles_per_image, dilation, m, k):
    for co in prange(y.shape[1]):
        _output_plane(M, y, co, table, tiles_per_image, dilation, m, k)


@njit(cache=True, nogil=True)
def _output_serial(M, y, table, tiles_per_image, dilation, m, k):
    for co in range(y.shape[1]):
        _output_plane(M, y, co, table, tiles_per_image, dilation, m, k)


@njit(cache=True, parallel=True)
def _grad_parallel(dy, Z, table, tiles_per_image, dilation, m, k):
    for co in prange(dy.shape[1]):
        _grad_plane(dy, Z, co, table, tiles_per_image, dilation, m, k)


@njit(cache=True, nogil=True)
def _grad_serial(dy, Z, table, tiles_per_image, dilation, m, k):
    for co in range(dy.shape[1]):
        _grad_plane(dy, Z, co, table, tiles_per_image, dilation, m, k)


# ---------------------------------------------------------------- filter transforms
# Loops over (co, c) reading each 3x3 filter where it lies in the weight (C_out, C_in, 3, 3): 9
# contiguous values. (Until 2026-12-02 the weight was first copied to (C_out, 3, 3, C_in): 40 ms of a
# PSPNet-18 step; reading it in place is 1.3-3x faster at 256-1024 channels, copies included. dx's
# kernel needs no transform of its own: see FLIP_ORDER.) kg holds 1/4680 and the integers 4, 6, 9, 130 (F(4, 3))
# or 1/2 (F(2, 3)) in float64, so the arithmetic is float64 whatever the dtype (in float32 these
# transforms doubled F(4x4)'s error in PSPNet's gradients) and only the result is rounded.

@njit(cache=True, inline="always")
def _g4(g0, g1, g2, kg):
    """G g for F(4, 3)."""
    scale, c4, c6, c9, c130 = kg[0], kg[1], kg[2], kg[3], kg[4]
    a, b = (c4 * g0 + c9 * g2) * scale, c6 * g1 * scale
    c = -(c9 * g0 + c4 * g2) * scale
    return c130 * g0 * scale, a + b, a - b, c - b, c + b, c130 * g2 * scale


@njit(cache=True, inline="always")
def _gt4(u0, u1, u2, u3, u4, u5, kg):
    """G^T u for F(4, 3) (the adjoint, for dw)."""
    scale, c4, c6, c9, c130 = kg[0], kg[1], kg[2], kg[3], kg[4]
    p, q = u1 + u2, u3 + u4
    return ((c130 * u0 + c4 * p - c9 * q) * scale, c6 * ((u1 - u2) - (u3 - u4)) * scale,
            (c9 * p - c4 * q + c130 * u5) * scale)


@njit(cache=True, inline="always")
def _g2(g0, g1, g2, kg):
    """G g for F(2, 3)."""
    half = kg[0]
    a = (g0 + g2) * half
    b = g1 * half
    return g0, a + b, a - b, g2


@njit(cache=True, inline="always")
def _gt2(u0, u1, u2, u3, kg):
    """G^T u for F(2, 3)."""
    half = kg[0]
    p = (u1 + u2) * half
    return u0 + p, (u1 - u2) * half, p + u3


# The filter loops write U through its (alpha^2, C_out*C_in + 16) buffer (_rows) at unsigned
# offsets, and take the constants as a tuple: with U as a strided 3-D view, signed indices and the
# constants read from an array (reloaded after every store), they spent ~1 ns a stored value, four
# times what writing U to memory takes (winograd_strips.py has the same findings).
@njit(cache=True, inline="always")
def _transform_one(w, o, i, U, column, m, kg):
    """U[:, column] = G g G^T for g = w[o, i] (3, 3); U is the (alpha^2, >= C_out*C_in) buffer."""
    o, i = uint64(o), uint64(i)
    g00, g01, g02 = np.float64(w[o, i, 0, 0]), np.float64(w[o, i, 0, 1]), np.float64(w[o, i, 0, 2])
    g10, g11, g12 = np.float64(w[o, i, 1, 0]), np.float64(w[o, i, 1, 1]), np.float64(w[o, i, 1, 2])
    g20, g21, g22 = np.float64(w[o, i, 2, 0]), np.float64(w[o, i, 2, 1]), np.float64(w[o, i, 2, 2])
    if m == 4:   # G g: columns l = 0, 1, 2 of the result
        c0 = _g4(g00, g10, g20, kg)
        c1 = _g4(g01, g11, g21, kg)
        c2 = _g4(g02, g12, g22, kg)
        for a in range(6):   # (G g) G^T: row a is G (c0[a], c1[a], c2[a])
            values = _g4(c0[a], c1[a], c2[a], kg)
            for b in range(6):
                U[uint64(a * 6 + b), column] = values[b]
    else:
        c0 = _g2(g00, g10, g20, kg)
        c1 = _g2(g01, g11, g21, kg)
        c2 = _g2(g02, g12, g22, kg)
        for a in range(4):
            values = _g2(c0[a], c1[a], c2[a], kg)
            for b in range(4):
                U[uint64(a * 4 + b), column] = values[b]


@njit(cache=True, parallel=True)
def _filter_transform(w, U, m, kg):
    """U[pos, co*C_in + c] = (G g G^T)[pos] for g = w[co, c] (w: the weight, (C_out, C_in, 3, 3))."""
    C_in = w.shape[1]
    for co in prange(w.shape[0]):
        for c in range(C_in):
            _transform_one(w, co, c, U, uint64(co * C_in + c), m, kg)


@njit(cache=True, parallel=True)
def _filter_transform_adjoint(dU, dw, m, kg):
    """dw[co, c] = G^T dU[:, co*C_in + c] G (3, 3), dU seen as alpha x alpha: the filter transform's adjoint."""
    C_out, C_in = dw.shape[0], dw.shape[1]
    for co in prange(C_out):
        for c in range(C_in):
            f, o, i = uint64(co * C_in + c), uint64(co), uint64(c)
            if m == 4:   # G^T dU: column j of the result is r_j (3 values)
                r0 = _gt4(dU[0, f], dU[6, f], dU[12, f], dU[18, f], dU[24, f], dU[30, f], kg)
                r1 = _gt4(dU[1, f], dU[7, f], dU[13, f], dU[19, f], dU[25, f], dU[31, f], kg)
                r2 = _gt4(dU[2, f], dU[8, f], dU[14, f], dU[20, f], dU[26, f], dU[32, f], kg)
                r3 = _gt4(dU[3, f], dU[9, f], dU[15, f], dU[21, f], dU[27, f], dU[33, f], kg)
                r4 = _gt4(dU[4, f], dU[10, f], dU[16, f], dU[22, f], dU[28, f], dU[34, f], kg)
                r5 = _gt4(dU[5, f], dU[11, f], dU[17, f], dU[23, f], dU[29, f], dU[35, f], kg)
                for k in range(3):   # (G^T dU) G: row k is G^T (r0[k], ..., r5[k])
                    row = _gt4(r0[k], r1[k], r2[k], r3[k], r4[k], r5[k], kg)
                    dw[o, i, k, 0], dw[o, i, k, 1], dw[o, i, k, 2] = row
            else:
                r0 = _gt2(dU[0, f], dU[4, f], dU[8, f], dU[12, f], kg)
                r1 = _gt2(dU[1, f], dU[5, f], dU[9, f], dU[13, f], kg)
                r2 = _gt2(dU[2, f], dU[6, f], dU[10, f], dU[14, f], kg)
                r3 = _gt2(dU[3, f], dU[7, f], dU[11, f], dU[15, f], kg)
                for k in range(3):
                    dw[o, i, k, 0], dw[o, i, k, 1], dw[o, i, k, 2] = _gt2(r0[k], r1[k], r2[k], r3[k], kg)


def _transform_adjoint(dU, dw, m):
    """dw = G^T dU G for dU a _planes array (alpha^2, C_out, C_in) (dw may be a view of some channels)."""
    _filter_transform_adjoint(_rows(dU), dw, m, _filter_constants(m))


def _filter_constants(m):
    """G's constants as scalars (float64): scale 1/4680 and 4, 6, 9, 130 for F(4, 3); 1/2 for F(2, 3)
    (padded to the same five, so that both compile the same tuple type)."""
    return (1 / 4680, 4.0, 6.0, 9.0, 130.0) if m == 4 else (1 / 2, 0.0, 0.0, 0.0, 0.0)


# ---------------------------------------------------------------- the convolutions

def _planes(alpha2, rows, columns, dtype):
    """An uninitialised (alpha2, rows, columns) array whose planes are NOT a power of two apart.

    A transform loop writes (or reads) the alpha^2 planes at once, one element of each per tile.
    With rows*columns a power of two (64 x 2048 floats = 512 KB) all those addresses fall in the
    same set of the L1 cache and evict each other: the loop ran 4.5x slower. 16 spare elements per
    plane spread them over different sets. Each plane stays a contiguous matrix for the BLAS."""
    size = rows * columns
    buffer = np.empty((alpha2, size + 16), dtype=dtype)
    return buffer[:, :size].reshape(alpha2, rows, columns)


def _constants(dtype):
    return np.array([8, 12, 18, 27, 36, 97], dtype=dtype)


# How the tile transforms run: three layouts of the same sums, equal bit for bit (tested).
#   "tiles"   the per-tile loops above: one tile at a time, scalar code; the plainest form of the
#             math, kept as the definition that the other two are checked against
#   "strips"  winograd_strips.py: space-to-depth, then vector loops over each phase's rows of tiles;
#             one extra tile per row of tiles goes through the GEMMs
#   "gather"  winograd_gather.py: every tile's values gathered through an index table, then the same
#             vector loops over all the call's tiles at once; each pixel is read (alpha/m)^2 times
# The table takes strips where the extra tile costs at most STRIPS_MAX_WASTE more GEMM work (32 or
# more tiles a row: 3%), gathered tiles elsewhere. Whole convolutions, fwd + dx + dw, strips ->
# gather, interleaved medians, 2 cores, 2026-12-03 19:00 UTC, ms: 8 x 64 x 64 x 64 dilation 2 (8
# tiles a row of F(4x4)) 79.1 -> 62.5 and 75.3 -> 61.8; 8 x 64 x 65 x 65 (17 a row) 75.9 -> 72.7;
# 2 x 64 x 65 x 65 36.4 -> 32.3; 8 x 64 x 33 x 33 24.9 -> 23.5; 8 x 256 x 33 x 33 270 -> 245;
# 2 x 1024 -> 512 at 17 px (F(2x2), 9 a row) 144.5 -> 137.2, 153.1 -> 153.9; but 8 x 64 x 129 x 129
# (33 a row) 237 -> 245: only there, where the extra tile is 3% and the gather's 2.25 reads a pixel
# cost more than it saves, do strips win. (Until this measurement strips were taken from 8 tiles a
# row, against the per-tile loops.) Measured earlier on 2026-12-03 (one channel plane loop at a time,
# one thread, min of 30 alternating calls, per-tile loops -> strips, ms): F(4x4) 64 channels 64 x 64
# input 1.26 -> 0.85, output 1.05 -> 0.62, dw's 0.98 -> 0.61; the same with dilation 2 (32 px phases,
# waste 1.12) 1.50 -> 1.23, 1.17 -> 0.76, 1.15 -> 0.83; 128 channels 33 x 33 0.85 -> 0.74, 0.58 ->
# 0.41, 0.65 -> 0.47; F(2x2) 2.0-2.4x faster on those maps. On 17 x 17 maps with dilation (3 tiles a
# row, waste 1.4) strips were 2-5x slower than the per-tile loops, and gathered tiles 1.7-3.8x faster
# (serial, ms, per-tile -> gather, input / output / dw's): 2 x 512 x 17 x 17 dilation 4 F(2x2) 7.47 ->
# 3.15, 3.26 -> 0.85, 3.59 -> 1.21; 2 x 256 dilation 2 F(4x4) 3.00 -> 1.62, 1.37 -> 0.77, 1.52 ->
# 0.95; 2 x 1024 F(2x2) 10.97 -> 5.18, 5.16 -> 1.57, 3.04 -> 1.13.
# LAYOUT forces one ("tiles", "strips" or "gather"; strips fall back to tiles on an empty output),
# for tests and teaching; None is the table.
STRIPS_MAX_WASTE = 1.03125
LAYOUT = None

Tiles = collections.namedtuple("Tiles", "table per_image layout sources targets")
Layouts = collections.namedtuple("Layouts", "tiles strips gather")


def _tiles(H, W, OH, OW, padding, dilation, m):
    """How the tiles of a call are numbered and transformed: the phase table (space_to_batch.py),
    tiles per image, the layout and its index tables. Decided at each call (LAYOUT, STRIPS_MAX_WASTE)."""
    layouts = _layouts(H, W, OH, OW, tuple(padding), tuple(dilation), m)
    if LAYOUT is not None:
        return getattr(layouts, LAYOUT) or layouts.tiles
    if layouts.strips is not None and layouts.strips.per_image <= STRIPS_MAX_WASTE * layouts.tiles.per_image:
        return layouts.strips
    return layouts.gather


@functools.lru_cache(maxsize=512)
def _layouts(H, W, OH, OW, padding, dilation, m):
    """Every layout of a call's tiles (strips None without tiles), kept per shape (a network has a few
    dozen): making the index tables with NumPy took 0.85 ms, five times per 3x3 layer and step.
    Their arrays are made read-only, as every call of that shape shares them."""
    table, per_image = stb.phase_table(H, W, OH, OW, padding, dilation, m)
    by_tile, by_strip = Tiles(table, per_image, "tiles", None, None), None
    by_gather = Tiles(table, per_image, "gather", gather.sources(table, per_image, H, W, dilation, m),
                      gather.targets(table, per_image, dilation, m))
    if per_image:
        strip_table, strip_tiles = strips.table(table)
        by_strip = Tiles(strip_table, strip_tiles, "strips", strips.sources(strip_table, H, W, dilation, m),
                         strips.targets(strip_table, dilation, m))
    arrays = [table, by_gather.sources, *by_gather.targets]
    if by_strip is not None:
        arrays += [by_strip.table, by_strip.sources, *by_strip.targets]
    for array in arrays:
        array.flags.writeable = False
    return Layouts(by_tile, by_strip, by_gather)


def _rows(planes):
    """The C-contiguous (alpha^2, >= C*T) buffer that a _planes array is a view of (the vector loops')."""
    rows = planes.base
    # (NumPy may give a length-1 axis any stride: only a longer one has to be a row of T tiles)
    assert rows is not None and rows.flags.c_contiguous and rows.shape[0] == planes.shape[0] \
        and (planes.shape[1] <= 1 or planes.strides[1] == planes.shape[2] * planes.itemsize) \
        and planes.ctypes.data == rows.ctypes.data
    return rows


def _input(x, V, tiles, dilation, m, k, parallel):
    """V (alpha^2, C, T) = B^T d B of every tile of x (g, C, H, W), in parallel over channels or not."""
    if tiles.layout == "strips":
        (strips.input_parallel if parallel else strips.input_serial)(
            x, _rows(V), V.shape[2], tiles.table, tiles.per_image, tiles.sources, m, tuple(k))
    elif tiles.layout == "gather":
        (gather.input_parallel if parallel else gather.input_serial)(x, _rows(V), V.shape[2], tiles.sources, m,
                                                                      tuple(k))
    else:
        (_input_parallel if parallel else _input_serial)(x, V, tiles.table, tiles.per_image, dilation, m, k)


def _output(M, y, tiles, dilation, m, k, parallel):
    """y (g, C_out, OH, OW) = A^T M A of every tile of M (alpha^2, C_out, T)."""
    if tiles.layout == "strips":
        (strips.output_parallel if parallel else strips.output_serial)(
            _rows(M), M.shape[2], y, tiles.table, tiles.per_image, tiles.targets, m, tuple(k))
    elif tiles.layout == "gather":
        (gather.output_parallel if parallel else gather.output_serial)(_rows(M), M.shape[2], y, tiles.targets, m,
                                                                        tuple(k))
    else:
        (_output_parallel if parallel else _output_serial)(M, y, tiles.table, tiles.per_image, dilation, m, k)


def _grad(dy, Z, tiles, dilation, m, k, parallel):
    """Z (alpha^2, C_out, T) = A e A^T of every m x m tile e of dy (dw's transform)."""
    if tiles.layout == "strips":
        (strips.grad_parallel if parallel else strips.grad_serial)(
            dy, _rows(Z), Z.shape[2], tiles.table, tiles.per_image, tiles.targets, m, tuple(k))
    elif tiles.layout == "gather":
        (gather.grad_parallel if parallel else gather.grad_serial)(dy, _rows(Z), Z.shape[2], tiles.targets, m,
                                                                    tuple(k))
    else:
        (_grad_parallel if parallel else _grad_serial)(dy, Z, tiles.table, tiles.per_image, dilation, m, k)


def _groups(N, bytes_per_image, filter_bytes):
    """Image groups [(n0, n1), ...] with at most TILES_BUDGET, or twice the transformed filter, of tiles.

    With many channels on a small map (PSPNet's layer4 and heads at 17 x 17) U is larger than the
    tiles (75 MB for 1024 -> 512 channels) and each group's GEMMs read all of it, and dw's groups
    each add into all of dU: there, few large groups are faster (dw 1.7x at the 1024-channel head)."""
    budget = max(TILES_BUDGET, 2 * filter_bytes)
    size = max(1, min(N, budget // max(1, bytes_per_image)))
    return [(n0, min(N, n0 + size)) for n0 in range(0, N, size)]


def _threaded(N, filter_bytes, tiles_per_image, tiles_size, limit):
    """The worker pool if this call goes one image per thread (see THREADED_FILTER_BYTES), else None."""
    if filter_bytes > limit or tiles_per_image < THREADED_MIN_TILES or tiles_size < PARALLEL_MIN_SIZE \
            or N < THREADED_MIN_IMAGES_PER_WORKER * max(1, threads.workers()):
        return None
    return threads.pool()


def transform_filter(weight, m):
    """U = G g G^T: weight (C_out, C_in, 3, 3) -> (alpha^2, C_out, C_in), in weight's dtype."""
    C_out, C_in = weight.shape[:2]
    U = _planes((m + 2) ** 2, C_out, C_in, weight.dtype)
    _filter_transform(weight, _rows(U), m, _filter_constants(m))
    return U


# dx's kernel from the forward's U, without a transform of its own. G's points come in pairs (p, -p)
# around 0 and infinity, so G applied to the reversed filter is G's rows reordered, some negated:
#     G J = S P G,   J the reversal, P the permutation FLIP_ORDER[m], S = diag(FLIP_SIGNS[m])
# (F(2, 3): rows 3, 1, 2, 0; F(4, 3): rows 5, 3, 4, 1, 2, 0 with the middle four negated). Nested,
# the transform of the flipped filter is U'[(a, b)] = s_a s_b U[(P a, P b)], and dx's kernel, also
# transposed over channels, is U'[xi]^T: each plane's GEMM takes the forward's plane P xi transposed
# (the BLAS reads it so; no copy) and the signs go into the output transform, which then applies
# A^T S instead of A^T on both sides: for F(4, 3) that negates its constants 8, 12, 18, 27.
# (Until 2026-12-02 dx had its own flipped transform reading the weight along C_out: 2.5x slower than
# the forward's, 0.38 s of a 3.3 s PSPNet-50 step at batch 2.)
FLIP_ORDER = {2: (3, 1, 2, 0), 4: (5, 3, 4, 1, 2, 0)}
FLIP_SIGNS = {2: (1, 1, 1, 1), 4: (1, -1, -1, -1, -1, 1)}


def _flip_planes(m):
    """The plane of U that each plane of dx's kernel is (transposed): P xi for xi = a * alpha + b."""
    order, alpha = FLIP_ORDER[m], m + 2
    return [order[a] * alpha + order[b] for a in range(alpha) for b in range(alpha)]


def _output_constants(dtype, m, flipped):
    """The constants of the output transform: A^T's, or (A^T S)'s for dx's kernel (see FLIP_ORDER)."""
    k = _constants(dtype)
    if flipped and m == 4:
        k[:4] = -k[:4]          # 8, 12, 18, 27: A^T's entries in the columns S negates
    return k


# Up to this size dx's kernel is copied out of U once per call (reordered, each plane transposed), so
# that each image's GEMMs are one batched call on one array: the per-plane calls on transposed views
# cost 36 Python-level calls per image, which one image per thread makes a few per millisecond.
FLIP_COPY_BYTES = 4 << 20


def _reordered(U, m):
    """dx's kernel U'[xi] = U[P xi]^T as one (alpha^2, C_in, C_out) array (unsigned; see FLIP_ORDER)."""
    out = _planes(U.shape[0], U.shape[2], U.shape[1], U.dtype)
    for xi, source in enumerate(_flip_planes(m)):
        out[xi] = U[source].T
    return out


def _transformed_products(U, V, out, m, flipped):
    """M = U @ V per plane (alpha^2 GEMMs), or with dx's kernel U'^T[P xi] when flipped (unsigned)."""
    if not flipped:
        return np.matmul(U, V, out=out)
    for xi, source in enumerate(_flip_planes(m)):
        np.matmul(U[source].T, V[xi], out=out[xi])
    return out


def correlate(x, U, out_size, padding, dilation, m, flipped=False):
    """y[n, co, o] = sum_{c, k} w[co, c, k] x[n, c, o - p + d*k] (2-D, 3x3, stride 1, zero outside x)
    for 0 <= o < out_size, from U = transform_filter(w, m). padding (ph, pw) may be negative.
    x (N, C_in, H, W) -> y (N, C_out, OH, OW). With flipped, the kernel is w's flipped transpose,
    w[:, :, ::-1, ::-1].transpose(1, 0) (dx's), still from w's U: x (N, C_out_w, H, W) -> y (N, C_in_w, ...)."""
    x = np.ascontiguousarray(x)
    N, C_in, H, W = x.shape
    alpha2 = U.shape[0]
    C_out = U.shape[2] if flipped else U.shape[1]
    OH, OW = out_size
    tiles = _tiles(H, W, OH, OW, padding, dilation, m)
    tiles_per_image = tiles.per_image
    y = np.empty((N, C_out, OH, OW), dtype=x.dtype)
    if y.size == 0:
        return y
    k, k_out = _constants(x.dtype), _output_constants(x.dtype, m, flipped)
    if flipped and U.nbytes <= FLIP_COPY_BYTES:      # dx's kernel as one array: one batched GEMM call
        U = _reordered(U, m)
        flipped = False
    workers = _threaded(N, U.nbytes, tiles_per_image, alpha2 * C_in * N * tiles_per_image, THREADED_FILTER_BYTES)
    if workers is not None:
        def one_image(n):
            V = _planes(alpha2, C_in, tiles_per_image, x.dtype)
            _input(x[n:n + 1], V, tiles, dilation, m, k, False)
            M = _transformed_products(U, V, _planes(alpha2, C_out, tiles_per_image, x.dtype), m, flipped)
            _output(M, y[n:n + 1], tiles, dilation, m, k_out, False)
        with threads.one_blas_thread():
            list(workers.map(one_image, range(N)))
        return y
    for n0, n1 in _groups(N, alpha2 * max(C_in, C_out) * tiles_per_image * x.itemsize, U.nbytes):
        T = (n1 - n0) * tiles_per_image
        V = _planes(alpha2, C_in, T, x.dtype)
        parallel = V.size >= PARALLEL_MIN_SIZE
        _input(x[n0:n1], V, tiles, dilation, m, k, parallel)
        M = _transformed_products(U, V, _planes(alpha2, C_out, T, x.dtype), m, flipped)   # alpha^2, C_out, T
        _output(M, y[n0:n1], tiles, dilation, m, k_out, parallel)
    return y


# Largest transformed filter (U, or dw's dU) made at once, in bytes. F(4x4)'s is 36/9 = 4x the weights:
# 75 MB for PSPNet's 1024 -> 512 head, and the head's convs run at the training step's peak of memory
# (all activations alive), so a U that size raised the step's peak by as much. Larger filters go
# through in blocks of channels: each block's U and its GEMMs, then the next (the input's transform V
# is made once). Only where all images fit one group (they do for such filters: a group may hold
# twice the filter's bytes of tiles), so nothing is transformed twice.
# The blocks run along the larger of the two channel counts, so that each block's GEMMs keep the
# other one whole: PSPNet-50's head (4096 -> 512, 134 MB of F(2x2) U) in blocks of 61 output
# channels ran its forward GEMMs (61 x 4096 x 162, 16 planes) at 0.55x the speed of whole ones
# (9 x 9.4 ms against 46.6 ms for the whole product; 2026-12-02, 2 cores, batch 2, 17 px); blocks of
# 488 input channels (512 x 488 x 162, summed into M) are wide enough again. The whole forward then
# measured 98-103 ms alone (torch 93 ms); the before/after conv_crossover runs (110 / 119 ms) were
# within that benchmark's noise, so no clean A/B figure for the whole call exists.
FILTER_BLOCK_BYTES = 16 << 20


def _channel_blocks(channels, filter_bytes):
    """[(c0, c1), ...] covering range(channels), each a block of at most FILTER_BLOCK_BYTES of filter."""
    size = channels if filter_bytes <= FILTER_BLOCK_BYTES else max(1, channels * FILTER_BLOCK_BYTES // filter_bytes)
    return [(c0, min(channels, c0 + size)) for c0 in range(0, channels, size)]


def _correlate_weight(x, weight, out_size, padding, dilation, m, flipped=False):
    """correlate(x, transform_filter(weight, m), ..., flipped), with a large filter transformed in blocks:
    of the output channels (each block's M goes through the output transform) when there are at least
    as many of them as of input channels, else of the input channels (the blocks' products summed in M)."""
    x = np.ascontiguousarray(x)
    N, C_in, H, W = x.shape
    C_out = weight.shape[1] if flipped else weight.shape[0]
    alpha2 = (m + 2) ** 2
    filter_bytes = alpha2 * C_out * C_in * x.itemsize
    OH, OW = out_size
    tiles = _tiles(H, W, OH, OW, padding, dilation, m)
    tiles_per_image = tiles.per_image
    groups = _groups(N, alpha2 * max(C_in, C_out) * tiles_per_image * x.itemsize, filter_bytes)
    by_output = C_out >= C_in
    blocks = _channel_blocks(C_out if by_output else C_in, filter_bytes)
    if len(blocks) == 1 or len(groups) > 1 or N * C_out * OH * OW == 0:
        return correlate(x, transform_filter(weight, m), out_size, padding, dilation, m, flipped)
    k, k_out = _constants(x.dtype), _output_constants(x.dtype, m, flipped)
    T = N * tiles_per_image
    V = _planes(alpha2, C_in, T, x.dtype)
    parallel = V.size >= PARALLEL_MIN_SIZE
    _input(x, V, tiles, dilation, m, k, parallel)
    y = np.empty((N, C_out, OH, OW), dtype=x.dtype)
    M = None if by_output else _planes(alpha2, C_out, T, x.dtype)
    part = None if by_output else np.empty_like(M)
    for c0, c1 in blocks:
        # the weight's rows are its output channels, its columns the input ones (the other way for dx)
        rows = by_output != flipped
        U = transform_filter(weight[c0:c1] if rows else weight[:, c0:c1], m)
        if by_output:
            M = _transformed_products(U, V, _planes(alpha2, c1 - c0, T, x.dtype), m, flipped)
            _output(M, y[:, c0:c1], tiles, dilation, m, k_out, parallel)   # y's channels c0:c1, a view
        elif c0 == 0:
            _transformed_products(U, V[:, c0:c1], M, m, flipped)
        else:
            M += _transformed_products(U, V[:, c0:c1], part, m, flipped)
        del U
    if not by_output:
        _output(M, y, tiles, dilation, m, k_out, parallel)
    return y


def conv2d_forward(x, weight, bias, padding, dilation, m):
    """y = conv2d(x, weight, bias, stride 1, padding, dilation) for a 3x3 weight, by F(m x m, 3x3)."""
    H, W = x.shape[2:]
    OH, OW = (size + 2 * p - 2 * d for size, p, d in zip((H, W), padding, dilation))
    y = _correlate_weight(x, weight, (OH, OW), padding, dilation, m)
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    return y


def conv2d_input_grad(dy, weight, x_shape, padding, dilation, m):
    """dx = the correlation of dy with the flipped, transposed kernel, padding 2*d - p, size H x W."""
    back_padding = tuple(2 * d - p for p, d in zip(padding, dilation))
    return _correlate_weight(dy, weight, x_shape[2:], back_padding, dilation, m, flipped=True)


def conv2d_weight_grad(dy, x, weight_shape, padding, dilation, m):
    """dw = G^T (sum over tiles of (A dY A^T) V^T) G: the adjoint of the forward in U."""
    x, dy = np.ascontiguousarray(x), np.ascontiguousarray(dy)
    N, C_in, H, W = x.shape
    C_out, OH, OW = dy.shape[1:]
    alpha2 = (m + 2) ** 2
    tiles = _tiles(H, W, OH, OW, padding, dilation, m)
    tiles_per_image = tiles.per_image
    k = _constants(x.dtype)
    filter_bytes = alpha2 * C_out * C_in * x.itemsize
    groups = _groups(N, alpha2 * (C_in + C_out) * tiles_per_image * x.itemsize, filter_bytes)
    by_rows = C_out >= C_in
    blocks = _channel_blocks(C_out if by_rows else C_in, filter_bytes)
    workers = _threaded(N, filter_bytes, tiles_per_image, alpha2 * C_in * N * tiles_per_image,
                        THREADED_WEIGHT_GRAD_BYTES)
    if workers is not None:                                      # one image per thread, dU summed
        def one_image(n):
            V = _planes(alpha2, C_in, tiles_per_image, x.dtype)
            Z = _planes(alpha2, C_out, tiles_per_image, x.dtype)
            _input(x[n:n + 1], V, tiles, dilation, m, k, False)
            _grad(dy[n:n + 1], Z, tiles, dilation, m, k, False)
            return np.matmul(Z, V.transpose(0, 2, 1), out=_planes(alpha2, C_out, C_in, x.dtype))
        with threads.one_blas_thread():
            partial_sums = workers.map(one_image, range(N))
            dU = next(partial_sums)
            for part in partial_sums:
                dU += part
        dw = np.empty((C_out, C_in, 3, 3), dtype=x.dtype)
        _transform_adjoint(dU, dw, m)
        return dw
    if len(blocks) > 1 and len(groups) == 1 and N > 0:          # dU in blocks of rows or of columns
        T = N * tiles_per_image
        V = _planes(alpha2, C_in, T, x.dtype)
        Z = _planes(alpha2, C_out, T, x.dtype)
        parallel = V.size >= PARALLEL_MIN_SIZE
        _input(x, V, tiles, dilation, m, k, parallel)
        _grad(dy, Z, tiles, dilation, m, k, parallel)
        dw = np.empty((C_out, C_in, 3, 3), dtype=x.dtype)
        for c0, c1 in blocks:
            if by_rows:
                dU = np.matmul(Z[:, c0:c1], V.transpose(0, 2, 1), out=_planes(alpha2, c1 - c0, C_in, x.dtype))
                _transform_adjoint(dU, dw[c0:c1], m)
            else:
                dU = np.matmul(Z, V[:, c0:c1].transpose(0, 2, 1), out=_planes(alpha2, C_out, c1 - c0, x.dtype))
                _transform_adjoint(dU, dw[:, c0:c1], m)
        return dw
    dU = _planes(alpha2, C_out, C_in, x.dtype)
    for group, (n0, n1) in enumerate(groups):
        T = (n1 - n0) * tiles_per_image
        V = _planes(alpha2, C_in, T, x.dtype)
        Z = _planes(alpha2, C_out, T, x.dtype)
        parallel = V.size >= PARALLEL_MIN_SIZE
        _input(x[n0:n1], V, tiles, dilation, m, k, parallel)
        _grad(dy[n0:n1], Z, tiles, dilation, m, k, parallel)
        if group == 0:
            np.matmul(Z, V.transpose(0, 2, 1), out=dU)                        # alpha^2, C_out, C_in
        else:
            dU += np.matmul(Z, V.transpose(0, 2, 1), out=_planes(alpha2, C_out, C_in, x.dtype))
    if N == 0:
        dU[...] = 0
    dw = np.empty((C_out, C_in, 3, 3), dtype=x.dtype)
    _transform_adjoint(dU, dw, m)
    return dw
