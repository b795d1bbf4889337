"""conv2d, reference variant: plain NumPy, the readable definition (see __init__.py for the math).

im2col and col2im loop over the KH*KW kernel taps only; each tap is one strided slice of the padded
input, holding what that tap sees at every output position.
"""

import numpy as np


def output_size(size, kernel, stride, padding, dilation):
    """Output length along one axis: floor((size + 2*padding - dilation*(kernel - 1) - 1) / stride) + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def im2col(x, kernel_size, stride, padding, dilation):
    """x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW); cols[(c*KH+kh)*KW+kw, (n*OH+oh)*OW+ow]."""
    N, C, H, W = x.shape
    (KH, KW), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    OH, OW = output_size(H, KH, sh, ph, dh), output_size(W, KW, sw, pw, dw)
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = np.empty((C, KH, KW, N, OH, OW), dtype=x.dtype)
    for kh in range(KH):
        for kw in range(KW):
            # Tap (kh, kw) sees rows kh*dh, kh*dh + sh, ..., one per output row oh.
            top, left = kh * dh, kw * dw
            seen = xpad[:, :, top:top + sh * (OH - 1) + 1:sh, left:left + sw * (OW - 1) + 1:sw]  # N,C,OH,OW
            cols[:, kh, kw] = seen.transpose(1, 0, 2, 3)
    return cols.reshape(C * KH * KW, N * OH * OW)


def col2im(cols, x_shape, kernel_size, stride, padding, dilation):
    """The adjoint of im2col: cols (C*KH*KW, N*OH*OW) -> dx (N, C, H, W), summing repeated pixels."""
    N, C, H, W = x_shape
    (KH, KW), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    OH, OW = output_size(H, KH, sh, ph, dh), output_size(W, KW, sw, pw, dw)
    cols = cols.reshape(C, KH, KW, N, OH, OW)
    dxpad = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=cols.dtype)
    for kh in range(KH):
        for kw in range(KW):
            top, left = kh * dh, kw * dw
            # += on a strided slice is safe: within one tap every pixel appears at most once.
            dxpad[:, :, top:top + sh * (OH - 1) + 1:sh, left:left + sw * (OW - 1) + 1:sw] += (
                cols[:, kh, kw].transpose(1, 0, 2, 3))
    return dxpad[:, :, ph:ph + H, pw:pw + W].copy()  # the padding's gradient is dropped


def conv2d_forward(x, weight, bias, stride, padding, dilation):
    """y (N, C_out, OH, OW) = conv(x (N, C_in, H, W), weight (C_out, C_in, KH, KW)) + bias (C_out,) or None."""
    N = x.shape[0]
    C_out, _, KH, KW = weight.shape
    cols = im2col(x, (KH, KW), stride, padding, dilation)           # C_in*KH*KW, N*OH*OW
    y_mat = np.matmul(weight.reshape(C_out, -1), cols)               # C_out, N*OH*OW
    OH = output_size(x.shape[2], KH, stride[0], padding[0], dilation[0])
    OW = output_size(x.shape[3], KW, stride[1], padding[1], dilation[1])
    y = y_mat.reshape(C_out, N, OH, OW).transpose(1, 0, 2, 3)          # N, C_out, OH, OW
    if bias is not None:
        y = y + bias.reshape(1, C_out, 1, 1)
    return np.ascontiguousarray(y)


def conv2d_backward(dy, x, weight, stride, padding, dilation,
                    needs_input_grad=True, needs_weight_grad=True, needs_bias_grad=True):
    """(dx, dw, db) from dy (N, C_out, OH, OW); each is None when its flag is False.

    cols is recomputed from x rather than saved by forward: it is KH*KW times the size of x.
    """
    C_out, _, KH, KW = weight.shape
    dy_mat = dy.transpose(1, 0, 2, 3).reshape(C_out, -1)               # C_out, N*OH*OW
    dx = dw = db = None
    if needs_weight_grad:
        cols = im2col(x, (KH, KW), stride, padding, dilation)         # C_in*KH*KW, N*OH*OW
        dw = np.matmul(dy_mat, cols.T).reshape(weight.shape)
    if needs_input_grad:
        dcols = np.matmul(weight.reshape(C_out, -1).T, dy_mat)         # C_in*KH*KW, N*OH*OW
        dx = col2im(dcols, x.shape, (KH, KW), stride, padding, dilation)
    if needs_bias_grad:
        db = dy.sum(axis=(0, 2, 3))
    return dx, dw, db
