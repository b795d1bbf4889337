"""Reference solutions of chapter 02's exercises (convolution)."""

import numpy as np


def _out(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1  # the dilated kernel spans d*(k-1)+1 pixels


def im2col(x, kernel_size, stride, padding, dilation):
    """2.1: x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW), cols[(c*KH+kh)*KW+kw, (n*OH+oh)*OW+ow]."""
    N, C, H, W = x.shape
    (KH, KW), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    OH, OW = _out(H, KH, sh, ph, dh), _out(W, KW, sw, pw, dw)
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = np.empty((C, KH, KW, N, OH, OW), dtype=x.dtype)
    for kh in range(KH):
        for kw in range(KW):
            # tap (kh, kw) at output (oh, ow) reads row oh*sh + kh*dh, column ow*sw + kw*dw
            rows = np.arange(OH) * sh + kh * dh
            columns = np.arange(OW) * sw + kw * dw
            seen = xpad[:, :, rows[:, None], columns[None, :]]  # N, C, OH, OW
            cols[:, kh, kw] = seen.transpose(1, 0, 2, 3)
    return cols.reshape(C * KH * KW, N * OH * OW)


def col2im(cols, x_shape, kernel_size, stride, padding, dilation):
    """2.2: cols (C*KH*KW, N*OH*OW) -> dx (N, C, H, W); a pixel seen by several taps gets the sum."""
    N, C, H, W = x_shape
    (KH, KW), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    OH, OW = _out(H, KH, sh, ph, dh), _out(W, KW, sw, pw, dw)
    cols = cols.reshape(C, KH, KW, N, OH, OW)
    dxpad = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=cols.dtype)
    for kh in range(KH):
        for kw in range(KW):
            top, left = kh * dh, kw * dw
            # within one tap each pixel appears at most once, so += on this strided slice is exact
            dxpad[:, :, top:top + sh * (OH - 1) + 1:sh, left:left + sw * (OW - 1) + 1:sw] += (
                cols[:, kh, kw].transpose(1, 0, 2, 3))
    return dxpad[:, :, ph:ph + H, pw:pw + W]  # what was read from the padding has no pixel to go to
