"""Chapter 05 (bilinear upsampling): the checks of its exercises.

5.1 bilinear_taps(in_hw, out_hw, oh, ow, align_corners): the input pixels and weights of one output pixel,
    checked against the gradient of that output pixel through F.interpolate.
5.2 writers_per_axis(in_size, out_size, align_corners): how many outputs give a non-zero weight to each input
    row (the count behind the bilinear backward's atomics), against the resize matrix.
"""

from __future__ import annotations

import numpy as np

from minipsp.course import Mismatch, exercise, expect_equal

# (input (H, W), output (OH, OW), output pixels): up and down, the borders (where clamping happens), inner pixels
TAP_CASES = [((4, 5), (9, 11), [(0, 0), (3, 7), (8, 10), (4, 5)]),
             ((3, 3), (7, 7), [(0, 6), (6, 0), (1, 2)]),
             ((8, 6), (3, 4), [(0, 0), (1, 2), (2, 3)])]
WRITER_CASES = [(8, 64), (4, 9), (17, 129), (60, 473), (7, 3), (5, 5)]


def _one_pixel_gradient(in_hw, out_hw, oh, ow, align_corners):
    import minipsp
    import minipsp.nn.functional as F

    x = minipsp.tensor(np.zeros((1, 1, *in_hw)), requires_grad=True)
    y = F.interpolate(x, size=out_hw, mode="bilinear", align_corners=align_corners)
    dy = np.zeros(y.shape)
    dy[0, 0, oh, ow] = 1.0
    y.backward(dy)  # y is linear in x: d y[oh, ow] / d x holds exactly its interpolation weights
    return np.asarray(x.grad)[0, 0]


def _weights(plane):
    """The non-zero weights of a plane as {(h, w): weight}, for a message."""
    return "{" + ", ".join(f"({h}, {w}): {plane[h, w]:.4g}" for h, w in np.argwhere(np.abs(plane) > 1e-12)) + "}"


@exercise("5.1", "the four taps of one output pixel", solution="bilinear_taps",
          hint="per axis: src = dst * (in - 1) / (out - 1) with align_corners=True, src = max((dst + 0.5) * in / out "
               "- 0.5, 0) with False; i0 = floor(src) (at most in - 1), i1 = min(i0 + 1, in - 1), lam = src - i0; "
               "the 2-D weights are products: (1-lh)(1-lw) at (h0, w0), (1-lh) lw at (h0, w1), lh (1-lw) at (h1, w0), "
               "lh lw at (h1, w1)")
def check_bilinear_taps(bilinear_taps):
    for align_corners in (True, False):
        for in_hw, out_hw, pixels in TAP_CASES:
            for oh, ow in pixels:
                taps = bilinear_taps(in_hw, out_hw, oh, ow, align_corners)
                what = (f"bilinear_taps(in_hw={in_hw}, out_hw={out_hw}, oh={oh}, ow={ow}, "
                        f"align_corners={align_corners})")
                try:
                    taps = [((int(h), int(w)), float(weight)) for (h, w), weight in taps]
                except (TypeError, ValueError) as error:
                    raise Mismatch(f"{what} should return a list of ((h, w), weight) pairs, got {taps!r}.") from error
                if len(taps) != 4:
                    raise Mismatch(f"{what} returned {len(taps)} taps; return all four ((h, w), weight) pairs, "
                                   "even where two of them fall on the same pixel or a weight is 0.")
                got = np.zeros(in_hw)
                for (h, w), weight in taps:
                    if not (0 <= h < in_hw[0] and 0 <= w < in_hw[1]):
                        clamp = ("below 0: with align_corners=False the source coordinate is clamped at 0, "
                                 "src = max((dst + 0.5) * in / out - 0.5, 0)") if min(h, w) < 0 else \
                                ("past the last pixel: i1 = min(i0 + 1, in - 1) keeps it inside")
                        raise Mismatch(f"{what}: tap ({h}, {w}) lies outside the {in_hw} input, {clamp}.")
                    got[h, w] += weight  # two taps on one pixel (a clamped border) add up
                expected = _one_pixel_gradient(in_hw, out_hw, oh, ow, align_corners)
                if not np.allclose(got, expected, rtol=1e-9, atol=1e-12):
                    raise Mismatch(f"{what}: the weights it puts on the input pixels should be {_weights(expected)} "
                                   f"(the gradient of y[{oh}, {ow}] through F.interpolate), got {_weights(got)}.")
    return "taps and weights equal the gradient of one output pixel through F.interpolate, 10 pixels x 2 conventions"


@exercise("5.2", "how many outputs write into one input pixel", solution="writers_per_axis",
          hint="output dst gives weight 1 - lam to i0 and lam to i1 (one pixel when i0 == i1); count, for every "
               "input index, the outputs that give it a weight greater than 0 (say > 1e-9, for round-off); "
               "a tap whose weight is 0 (lam == 0 puts nothing on i1) is not a writer")
def check_writers_per_axis(writers_per_axis):
    from minipsp.kernels.interpolate.reference import bilinear_matrix

    for align_corners in (True, False):
        for in_size, out_size in WRITER_CASES:
            expected = (bilinear_matrix(in_size, out_size, align_corners) > 1e-9).sum(axis=0)  # 1e-9: round-off
            got = writers_per_axis(in_size, out_size, align_corners)
            if got is None:
                raise Mismatch("writers_per_axis returned None; return an array of one count per input index.")
            got = np.asarray(got)
            expect_equal(f"shape of writers_per_axis({in_size}, {out_size}, align_corners={align_corners})",
                         got.shape, expected.shape)
            expect_equal(f"writers_per_axis({in_size}, {out_size}, align_corners={align_corners})",
                         got.tolist(), expected.tolist())
    return (f"counts of non-zero writers equal the resize matrix's non-zeros on {len(WRITER_CASES)} sizes "
            "x 2 conventions")
