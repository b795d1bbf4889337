"""Chapter 02 (convolution): the checks of its exercises.

2.1 im2col(x, kernel_size, stride, padding, dilation): the dilated im2col, against kernels.conv2d.reference.
2.2 col2im(cols, x_shape, kernel_size, stride, padding, dilation): its adjoint (adds where im2col copied).
"""

from __future__ import annotations

import numpy as np

from minipsp.course import Mismatch, exercise, expect_close
from minipsp.kernels.conv2d import reference as conv_ref

# (x shape, kernel_size, stride, padding, dilation): plain, dilated, strided + non-square + unequal
# dilations, and a 1x1 with stride 2 (three pixels of four never seen).
CASES = [
    ((2, 3, 6, 5), (3, 3), (1, 1), (1, 1), (1, 1)),
    ((1, 2, 9, 9), (3, 3), (1, 1), (2, 2), (2, 2)),
    ((2, 2, 11, 8), (3, 2), (2, 1), (1, 0), (2, 3)),
    ((1, 3, 7, 7), (3, 3), (2, 2), (4, 4), (4, 4)),
    ((2, 2, 5, 6), (1, 1), (2, 2), (0, 0), (1, 1)),
]


def _describe(case):
    shape, k, s, p, d = case
    return f"x {shape}, kernel_size={k}, stride={s}, padding={p}, dilation={d}"


def _first_wrong_entry(got, expected, case):
    """Name the first wrong entry of cols by what it means: which tap, channel, image and output pixel."""
    shape, (KH, KW), (sh, sw), (ph, pw), (dh, dw) = case
    N, C, H, W = shape
    OH, OW = conv_ref.output_size(H, KH, sh, ph, dh), conv_ref.output_size(W, KW, sw, pw, dw)
    row, column = (int(i) for i in np.argwhere(got != expected)[0])
    c, kh, kw = row // (KH * KW), (row // KW) % KH, row % KW
    n, oh, ow = column // (OH * OW), (column // OW) % OH, column % OW
    r, q = oh * sh + kh * dh, ow * sw + kw * dw  # in the padded input
    source = f"x[{n}, {c}, {r - ph}, {q - pw}]" if 0 <= r - ph < H and 0 <= q - pw < W else "the zero padding"
    wrong = int(np.sum(got != expected))
    return (f"cols[{row}, {column}] (row {row} = channel {c}, tap kh={kh}, kw={kw}; column {column} = image {n}, "
            f"output oh={oh}, ow={ow}) should hold x_pad[{n}, {c}, {r}, {q}], i.e. {source} = "
            f"{expected[row, column]:.6g}, got {got[row, column]:.6g} ({wrong} of {got.size} entries off). "
            "Hint: tap (kh, kw) of output (oh, ow) reads x_pad[oh*stride + kh*dilation, ow*stride + kw*dilation]; "
            "rows are ordered (c, kh, kw), columns (n, oh, ow).")


@exercise("2.1", "a dilated im2col", solution="im2col",
          hint="tap (kh, kw) of output (oh, ow) reads x_pad[oh*stride + kh*dilation, ow*stride + kw*dilation]; "
               "rows are ordered (c, kh, kw), columns (n, oh, ow); OH uses the dilated kernel size "
               "dilation*(KH-1)+1")
def check_im2col(im2col):
    rng = np.random.default_rng(0)
    for case in CASES:
        shape, k, s, p, d = case
        x = rng.standard_normal(shape)
        expected = conv_ref.im2col(x, k, s, p, d)
        got = im2col(x, k, s, p, d)
        if got is None:
            raise Mismatch(f"im2col returned None for {_describe(case)}; return the cols matrix.")
        got_array = np.asarray(got)
        if got_array.shape == expected.shape and not np.array_equal(got_array, expected):
            raise Mismatch(f"im2col for {_describe(case)}: " + _first_wrong_entry(got_array, expected, case))
        expect_close(f"im2col for {_describe(case)}", got, expected, rtol=0, atol=0,
                     hint="cols has shape (C*KH*KW, N*OH*OW), OH = (H + 2p - d*(KH-1) - 1) // s + 1; "
                          "row (c*KH + kh)*KW + kw, column (n*OH + oh)*OW + ow")
    return f"im2col equals kernels.conv2d.reference.im2col exactly on {len(CASES)} stride/padding/dilation cases"


@exercise("2.2", "col2im, the adjoint of im2col", solution="col2im",
          hint="start from zeros of the padded shape, ADD (+=) each tap's slice of cols back where im2col read it "
               "(a pixel seen by several taps gets the sum), then cut the padding off")
def check_col2im(col2im):
    rng = np.random.default_rng(1)
    for case in CASES:
        shape, k, s, p, d = case
        cols = rng.standard_normal(conv_ref.im2col(np.zeros(shape), k, s, p, d).shape)
        got = col2im(cols, shape, k, s, p, d)
        expect_close(f"col2im for {_describe(case)}", got, conv_ref.col2im(cols, shape, k, s, p, d),
                     rtol=1e-12, atol=1e-12)
        x = rng.standard_normal(shape)  # the adjoint property, stated as the learner may test it
        lhs, rhs = float((conv_ref.im2col(x, k, s, p, d) * cols).sum()), float((x * np.asarray(got)).sum())
        expect_close(f"<x, col2im(c)> against <im2col(x), c> for {_describe(case)}", rhs, lhs, rtol=1e-9)
    return f"col2im equals kernels.conv2d.reference.col2im on {len(CASES)} cases, and <im2col(x), c> = <x, col2im(c)>"
