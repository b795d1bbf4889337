"""Chapter 02's exercises: each check passes the reference solution and rejects plausible mistakes."""

import numpy as np
from course_helpers import make_chapter_tests

from minipsp.course import run
from minipsp.course.solutions import ch02 as solutions


def im2col_ignores_dilation(x, kernel_size, stride, padding, dilation):
    return solutions.im2col(x, kernel_size, stride, padding, (1, 1))


def im2col_undilated_output_size(x, kernel_size, stride, padding, dilation):
    """Taps spread by the dilation, but OH computed as if the kernel were not dilated (reads past the end)."""
    N, C, H, W = x.shape
    (KH, KW), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    OH, OW = (H + 2 * ph - KH) // sh + 1, (W + 2 * pw - KW) // sw + 1
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = np.zeros((C, KH, KW, N, OH, OW))
    for kh in range(KH):
        for kw in range(KW):
            for oh in range(OH):
                for ow in range(OW):
                    r, c = oh * sh + kh * dh, ow * sw + kw * dw
                    if r < xpad.shape[2] and c < xpad.shape[3]:
                        cols[:, kh, kw, :, oh, ow] = xpad[:, :, r, c].T
    return cols.reshape(C * KH * KW, N * OH * OW)


def im2col_taps_last(x, kernel_size, stride, padding, dilation):
    """Rows ordered (kh, kw, c) instead of (c, kh, kw): the weight reshape no longer lines up."""
    C, (KH, KW) = x.shape[1], kernel_size
    cols = solutions.im2col(x, kernel_size, stride, padding, dilation)
    return cols.reshape(C, KH, KW, -1).transpose(1, 2, 0, 3).reshape(C * KH * KW, -1)


def col2im_assigns(cols, x_shape, kernel_size, stride, padding, dilation):
    """`=` instead of `+=`: each pixel keeps only the last tap that saw it."""
    N, C, H, W = x_shape
    (KH, KW), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    OH = (H + 2 * ph - dh * (KH - 1) - 1) // sh + 1
    OW = (W + 2 * pw - dw * (KW - 1) - 1) // sw + 1
    cols = cols.reshape(C, KH, KW, N, OH, OW)
    dxpad = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    for kh in range(KH):
        for kw in range(KW):
            top, left = kh * dh, kw * dw
            dxpad[:, :, top:top + sh * (OH - 1) + 1:sh, left:left + sw * (OW - 1) + 1:sw] = (
                cols[:, kh, kw].transpose(1, 0, 2, 3))
    return dxpad[:, :, ph:ph + H, pw:pw + W]


def col2im_keeps_padding(cols, x_shape, kernel_size, stride, padding, dilation):
    """Forgets to cut the padding off (wrong shape as soon as padding > 0)."""
    N, C, H, W = x_shape
    ph, pw = padding
    padded = solutions.col2im(cols, (N, C, H + 2 * ph, W + 2 * pw), kernel_size, stride, (0, 0), dilation) \
        if (ph, pw) != (0, 0) else solutions.col2im(cols, x_shape, kernel_size, stride, padding, dilation)
    return padded


MISTAKES = {
    "2.1": [im2col_ignores_dilation, im2col_undilated_output_size, im2col_taps_last],
    "2.2": [col2im_assigns, col2im_keeps_padding],
}

(test_solution_passes, test_mistake_rejected, test_stub_is_not_solved,
 test_chapter_has_exercises_and_mistakes) = make_chapter_tests(2, MISTAKES)


def test_im2col_message_names_the_wrong_entry():
    """A wrong cols is reported by what the entry means (tap, channel, image, output pixel), not a bare index."""
    message = run("2.1", im2col_taps_last).message
    assert "tap kh=" in message and "output oh=" in message and "should hold x_pad[" in message, message
