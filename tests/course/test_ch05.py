"""Chapter 05's exercises: each check passes the reference solution and rejects plausible mistakes."""

import math

import numpy as np
from course_helpers import make_chapter_tests

from minipsp.course import run
from minipsp.course.solutions import ch05 as solutions


def taps_always_align_corners(in_hw, out_hw, oh, ow, align_corners):
    """Ignores the convention: always the align_corners=True formula."""
    return solutions.bilinear_taps(in_hw, out_hw, oh, ow, True)


def taps_unclamped_right(in_hw, out_hw, oh, ow, align_corners):
    """i1 = i0 + 1 without the clamp: at the last row/column a tap falls outside the input."""
    def source(dst, n_in, n_out):
        src = dst * (n_in - 1) / (n_out - 1) if align_corners else max((dst + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = math.floor(src)
        return i0, i0 + 1, src - i0

    h0, h1, lh = source(oh, in_hw[0], out_hw[0])
    w0, w1, lw = source(ow, in_hw[1], out_hw[1])
    return [((h0, w0), (1 - lh) * (1 - lw)), ((h0, w1), (1 - lh) * lw), ((h1, w0), lh * (1 - lw)), ((h1, w1), lh * lw)]


def taps_unclamped_left(in_hw, out_hw, oh, ow, align_corners):
    """align_corners=False without max(., 0): the first output reads from index -1."""
    def source(dst, n_in, n_out):
        src = dst * (n_in - 1) / (n_out - 1) if align_corners else (dst + 0.5) * n_in / n_out - 0.5
        i0 = math.floor(src)
        return i0, min(i0 + 1, n_in - 1), src - i0

    h0, h1, lh = source(oh, in_hw[0], out_hw[0])
    w0, w1, lw = source(ow, in_hw[1], out_hw[1])
    return [((h0, w0), (1 - lh) * (1 - lw)), ((h0, w1), (1 - lh) * lw), ((h1, w0), lh * (1 - lw)), ((h1, w1), lh * lw)]


def taps_weights_swapped(in_hw, out_hw, oh, ow, align_corners):
    """lam on the near pixel and 1 - lam on the far one."""
    (a, wa), (b, wb), (c, wc), (d, wd) = solutions.bilinear_taps(in_hw, out_hw, oh, ow, align_corners)
    return [(a, wd), (b, wc), (c, wb), (d, wa)]


def writers_counting_zero_weights(in_size, out_size, align_corners):
    """Counts every add the kernel performs, also those of weight 0 (the lopsided count)."""
    from minipsp.kernels.interpolate.reference import bilinear_source

    i0, i1, _ = bilinear_source(in_size, out_size, align_corners)
    counts = np.zeros(in_size, dtype=np.int64)
    np.add.at(counts, i0, 1)
    np.add.at(counts, i1[i1 != i0], 1)
    return counts


def writers_only_nearest(in_size, out_size, align_corners):
    """Counts only the i0 tap of each output."""
    from minipsp.kernels.interpolate.reference import bilinear_source

    i0, _, _ = bilinear_source(in_size, out_size, align_corners)
    return np.bincount(i0, minlength=in_size)


MISTAKES = {
    "5.1": [taps_always_align_corners, taps_unclamped_right, taps_unclamped_left, taps_weights_swapped],
    "5.2": [writers_counting_zero_weights, writers_only_nearest],
}

(test_solution_passes, test_mistake_rejected, test_stub_is_not_solved,
 test_chapter_has_exercises_and_mistakes) = make_chapter_tests(5, MISTAKES)


def test_taps_messages_name_the_clamp_and_the_weights():
    assert "clamped at 0" in run("5.1", taps_unclamped_left).message
    assert "min(i0 + 1, in - 1)" in run("5.1", taps_unclamped_right).message
    message = run("5.1", taps_always_align_corners).message
    assert "should be {(" in message and "got {(" in message, message
