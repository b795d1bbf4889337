"""Chapter 12 (fast convolution): the checks of its exercises. The truth: kernels.conv2d.winograd.MATRICES
and kernels.conv2d.reference.

12.1 f23_tiles(d, g) -> (m, y): a 1-D correlation of a whole signal by F(2, 3) tiles; m (T, 4) holds each
     tile's four products (G g) * (B^T d_t), y (n - 2,) the outputs, against a direct correlation.
12.2 winograd_tile(d, w, m) -> (U, V, Y): one output tile of a multi-channel 3x3 layer by F(m x m, 3 x 3),
     the channel sum as alpha^2 matrix products; U, V against the package's matrices, Y against
     kernels.conv2d.reference.
12.3 dilated_conv_by_phases(x, w, padding, dilation): a dilated 3x3 convolution as undilated ones on the
     phase sub-images, each with its own padding, against kernels.conv2d.reference.
"""

from __future__ import annotations

import numpy as np

from minipsp.course import Mismatch, exercise, expect_close
from minipsp.kernels.conv2d import reference as conv_ref
from minipsp.kernels.conv2d.winograd import MATRICES


def _correlate(d, g):
    return np.array([d[i:i + len(g)] @ g for i in range(len(d) - len(g) + 1)])


def _pair(answer, names, what):
    if not (isinstance(answer, (tuple, list)) and len(answer) == len(names)):
        raise Mismatch(f"{what} must return a tuple ({', '.join(names)}); got {type(answer).__name__}"
                       f"{f' of length {len(answer)}' if isinstance(answer, (tuple, list)) else ''}.")
    return answer


# ------------------------------------------------------------------------------------------- 12.1
@exercise("12.1", "a 1-D correlation by F(2, 3) tiles", solution="f23_tiles",
          hint="tile t reads d[2t : 2t + 4] (tiles step by 2 outputs and overlap by 2 inputs; zero-pad the "
               "last one when n - 2 is odd); its products are (G @ g) * (B^T @ d_t), its two outputs A^T @ m_t")
def check_f23_tiles(f23_tiles):
    BT, G, AT = (MATRICES[2][k] for k in ("BT", "G", "AT"))
    rng = np.random.default_rng(12)
    for n in (4, 5, 8, 11):
        d, g = rng.standard_normal(n), rng.standard_normal(3)
        T = (n - 2 + 1) // 2
        padded = np.concatenate([d, np.zeros(2 * T + 2 - n)])
        tiles = np.stack([padded[2 * t:2 * t + 4] for t in range(T)])          # (T, 4): overlapping windows
        want_m = (G @ g)[None, :] * (tiles @ BT.T)
        want_y = _correlate(d, g)
        got_m, got_y = _pair(f23_tiles(d, g), ("m", "y"), "f23_tiles")
        got_m, got_y = np.asarray(got_m, dtype=np.float64), np.asarray(got_y, dtype=np.float64)
        where = f"a signal of n = {n} samples ({n - 2} outputs, {T} tile{'s' * (T > 1)})"
        if got_y.shape == want_y.shape and np.allclose(got_y, _correlate(d, g[::-1])) \
                and not np.allclose(want_y, _correlate(d, g[::-1])):
            raise Mismatch(f"y for {where} is the convolution (g reversed), not the correlation "
                           "y[i] = g[0] d[i] + g[1] d[i+1] + g[2] d[i+2] that networks call convolution.")
        if got_m.shape != want_m.shape:
            raise Mismatch(f"m for {where}: expected shape {want_m.shape} (one row of 4 products per tile of 2 "
                           f"outputs, the last one zero-padded when the count is odd), got shape {got_m.shape}.")
        for t in range(T):
            if not np.allclose(got_m[t], want_m[t], rtol=1e-9, atol=1e-12):
                if np.allclose(got_m[t], want_m[t] * [1, 2, 2, 1], rtol=1e-9, atol=1e-12):
                    raise Mismatch(f"m[{t}] for {where}: m2 and m3 are twice the expected values: the halves "
                                   "belong to the filter, (g0 + g1 + g2) / 2 and (g0 - g1 + g2) / 2 (rows of G), "
                                   "so that they are computed once per layer and the tile needs no division.")
                raise Mismatch(f"m[{t}] (the products of tile {t}) for {where}: expected {np.round(want_m[t], 6)}, "
                               f"got {np.round(got_m[t], 6)}. Tile {t} reads d[{2 * t}:{2 * t + 4}] = "
                               f"{np.round(tiles[t], 6)}: tiles step by 2 and overlap by 2 samples. "
                               "m_t = (G @ g) * (B^T @ d_t), with G and B^T of winograd.MATRICES[2].")
        expect_close(f"y for {where}", got_y, want_y, rtol=1e-9, atol=1e-12,
                     hint="the outputs of tile t are A^T @ m[t] = (m1 + m2 + m3, m2 - m3 - m4), at y[2t], y[2t+1]; "
                          "drop the extra output of a zero-padded last tile")
    return ("the products of every F(2, 3) tile and the outputs equal (G g) * (B^T d_t) and a direct "
            "correlation, for 4 signal lengths (even and odd output counts)")


# ------------------------------------------------------------------------------------------- 12.2
TILE_CASES = [(2, 3, 4), (2, 1, 1), (4, 2, 5), (4, 6, 3)]  # (m, C_in, C_out)


@exercise("12.2", "one tile of a multi-channel layer, as alpha^2 matrix products", solution="winograd_tile",
          hint="U[i, j] = (G @ w[co, ci] @ G.T)[i, j] for every (co, ci): shape (alpha, alpha, C_out, C_in); "
               "V[i, j] = (B^T @ d[ci] @ B)[i, j]: (alpha, alpha, C_in); M[i, j] = U[i, j] @ V[i, j] sums over "
               "C_in; Y[co] = A^T @ M[:, :, co] @ A. np.einsum does each in one line")
def check_winograd_tile(winograd_tile):
    rng = np.random.default_rng(122)
    for m, C_in, C_out in TILE_CASES:
        BT, G, AT = (MATRICES[m][k] for k in ("BT", "G", "AT"))
        alpha = m + 2
        d, w = rng.standard_normal((C_in, alpha, alpha)), rng.standard_normal((C_out, C_in, 3, 3))
        want_U = np.einsum("ik,ockl,jl->ijoc", G, w, G)                # G w G^T
        want_V = np.einsum("ik,ckl,jl->ijc", BT, d, BT)                # B^T d B
        want_Y = conv_ref.conv2d_forward(d[None], w, None, (1, 1), (0, 0), (1, 1))[0]
        where = f"F({m}x{m}, 3x3), C_in = {C_in}, C_out = {C_out}"
        U, V, Y = _pair(winograd_tile(d, w, m), ("U", "V", "Y"), "winograd_tile")
        U, V, Y = (np.asarray(a, dtype=np.float64) for a in (U, V, Y))
        if U.shape == (alpha, alpha, C_in, C_out) and C_in != C_out:
            raise Mismatch(f"U for {where} has shape {U.shape}: (alpha, alpha, C_in, C_out); it should be "
                           f"(alpha, alpha, C_out, C_in) = {want_U.shape}, so that U[i, j] @ V[i, j] is a matrix "
                           "(C_out, C_in) times a vector (C_in,): the sum over the input channels.")
        if U.shape == want_U.shape and np.allclose(U, np.einsum("ik,ockl,jl->ijoc", G, w[:, :, ::-1, ::-1], G)) \
                and not np.allclose(U, want_U):
            raise Mismatch(f"U for {where} is the transform of the flipped filter (a true convolution); the layer "
                           "is a correlation, Y[co, y, x] = sum w[co, ci, k, l] d[ci, y + k, x + l]: do not flip w.")
        expect_close(f"U, the transformed filters, for {where}", U, want_U, rtol=1e-9, atol=1e-12,
                     hint="U[:, :, co, ci] = G @ w[co, ci] @ G.T (G of winograd.MATRICES[m], shape (alpha, 3))")
        if V.shape == want_V.shape and np.allclose(V, np.einsum("ki,ckl,lj->ijc", BT, d, BT)) \
                and not np.allclose(V, want_V):
            raise Mismatch(f"V for {where} is B d B^T (B^T on the wrong side); the input transform is B^T d B: "
                           "B^T @ d[ci] @ B, with B = BT.T.")
        expect_close(f"V, the transformed input tile, for {where}", V, want_V, rtol=1e-9, atol=1e-12,
                     hint="V[:, :, ci] = BT @ d[ci] @ BT.T")
        expect_close(f"Y, the {m}x{m} output tile, for {where} (against kernels.conv2d.reference)", Y, want_Y,
                     rtol=1e-8, atol=1e-10,
                     hint="M[i, j] = U[i, j] @ V[i, j] (shape (alpha, alpha, C_out)), then Y[co] = AT @ M[:, :, co] "
                          "@ AT.T")
    return ("U = G w G^T, V = B^T d B and the output tile Y equal the package's transforms and a direct "
            "convolution, for F(2x2) and F(4x4) and 4 channel counts")


# ------------------------------------------------------------------------------------------- 12.3
# (x shape, padding, dilation): PSPNet's layer3 (p = d = 2), sizes that d does not divide, p != d (the phases
# then read other phases of x, with other paddings), no padding at all, dilation 3 and 4, and d = 1.
PHASE_CASES = [((1, 2, 8, 8), 2, 2), ((2, 2, 9, 7), 2, 2), ((1, 3, 9, 10), 1, 2), ((1, 2, 10, 9), 0, 2),
               ((1, 2, 11, 13), 3, 3), ((1, 1, 10, 11), 1, 3), ((1, 2, 9, 10), 4, 4), ((1, 2, 6, 7), 1, 1)]


@exercise("12.3", "a dilated convolution by space-to-batch", solution="dilated_conv_by_phases",
          hint="output row o = a + d*i reads x[o - p + d*k] = x[r + d*(i + q + k)] with q, r = divmod(a - p, d): "
               "output phase a comes from the input phase x[r::d], whose window starts at q (pad it by -q on top, "
               "with zeros below), and the small convolution is undilated")
def check_dilated_conv_by_phases(dilated_conv_by_phases):
    rng = np.random.default_rng(123)
    for shape, p, d in PHASE_CASES:
        x, w = rng.standard_normal(shape), rng.standard_normal((2, shape[1], 3, 3))
        want = conv_ref.conv2d_forward(x, w, None, (1, 1), (p, p), (d, d))
        got = dilated_conv_by_phases(x, w, p, d)
        where = f"x {shape}, padding {p}, dilation {d}"
        if got is None:
            raise Mismatch(f"dilated_conv_by_phases returned None for {where}; return y.")
        got = np.asarray(got, dtype=np.float64)
        if got.shape != want.shape:
            raise Mismatch(f"y for {where}: expected shape {want.shape}, got {got.shape}. The output size of a "
                           "dilated 3x3 convolution is H + 2p - 2d.")
        for a in range(min(d, want.shape[2])):
            for b in range(min(d, want.shape[3])):
                (qh, r), (qw, s) = divmod(a - p, d), divmod(b - p, d)
                expect_close(f"y[:, :, {a}::{d}, {b}::{d}] (output phase ({a}, {b})) for {where}",
                             got[:, :, a::d, b::d], want[:, :, a::d, b::d], rtol=1e-9, atol=1e-12,
                             hint=f"this phase is an undilated 3x3 correlation of x[:, :, {r}::{d}, {s}::{d}] whose "
                                  f"first window starts at row {qh}, column {qw} of that sub-image (padding {-qh} on "
                                  f"top, {-qw} on the left): q, r = divmod(a - p, d)")
    return ("the dilated convolution equals kernels.conv2d.reference's on 8 cases, dilation 1 to 4, padding 0 to 4, "
            "sizes the dilation does not divide")
