"""Bilinear and nearest interpolation in plain NumPy: the readable definition (see __init__ for the math).

`bilinear_source` and `nearest_source` say, for each output row (or column), which input rows it
reads and with what weights. The cpu and cuda variants use the same two helpers.

Here the bilinear resize is written as what it is, a linear map applied along each axis:
y = Ah @ x @ Aw^T with sparse (OH, H) and (OW, W) weight matrices, so the backward is its
transpose, dx = Ah^T @ dy @ Aw. The cpu and cuda kernels compute the same sums pixel by pixel
(gather in forward, scatter-add in backward); the tests check that the two agree.
"""

from __future__ import annotations

import numpy as np


def bilinear_source(in_size, out_size, align_corners, scale=None):
    """Source rows of a bilinear resize along one axis: (i0, i1, lam), each of shape (out_size,).

    Output row `dst` reads input rows i0 and i1 with weights (1 - lam) and lam.
    `scale` is the user's scale factor (out / in) or None; torch uses its inverse for the
    spacing of the samples when align_corners=False, so we do too.
    """
    dst = np.arange(out_size, dtype=np.float64)
    if out_size == in_size:
        # torch copies an axis whose size does not change, even when a scale_factor such as 1.1
        # (floor(5 * 1.1) = 5) would space the samples differently; so do we.
        index = np.arange(out_size, dtype=np.int64)
        return index, index, np.zeros(out_size)
    if align_corners:
        step = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
        src = dst * step
    else:
        step = 1.0 / scale if scale is not None and scale > 0 else in_size / out_size
        # Pixel centres sit at index + 0.5; samples left of the first centre clamp to it.
        src = np.maximum((dst + 0.5) * step - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    lam = src - i0
    return i0, i1, lam


def nearest_source(in_size, out_size, scale=None):
    """Source row of each output row for torch's 'nearest': min(floor(dst * in / out), in - 1).

    torch computes `dst * step` in float32 (and takes shortcuts for out == in and out == 2 * in);
    doing exactly the same here makes us pick the same pixel when the product is near an integer.
    """
    dst = np.arange(out_size, dtype=np.int64)
    if out_size == in_size:
        return dst
    if out_size == 2 * in_size:
        return dst // 2
    if scale is not None and scale > 0:
        step = np.float32(1.0 / scale)
    else:
        step = np.float32(in_size) / np.float32(out_size)
    src = np.floor(dst.astype(np.float32) * step).astype(np.int64)
    return np.minimum(src, in_size - 1)


def _scale(scales, axis):
    return None if scales is None else scales[axis]


def bilinear_matrix(in_size, out_size, align_corners, scale=None):
    """The (out_size, in_size) matrix A of a 1-D bilinear resize: y = A @ x along that axis.

    Row `dst` holds the weights (1 - lam) at column i0 and lam at column i1 (added: i0 == i1
    at the border), so every row sums to 1.
    """
    i0, i1, lam = bilinear_source(in_size, out_size, align_corners, scale)
    A = np.zeros((out_size, in_size))
    rows = np.arange(out_size)
    np.add.at(A, (rows, i0), 1 - lam)   # add.at, not A[rows, i0] += ...: adds twice where i0 == i1
    np.add.at(A, (rows, i1), lam)
    return A


def bilinear_forward(x, size, align_corners, scales=None):
    """y (N,C,OH,OW) = Ah @ x @ Aw^T: resize the columns, then the rows (the 2-D resize is separable).

    Element by element this is the 4-pixel formula of __init__: Ah[oh] has the weights of rows
    h0, h1 and Aw[ow] those of columns w0, w1.
    """
    H, W = x.shape[2:]
    Ah = bilinear_matrix(H, size[0], align_corners, _scale(scales, 0)).astype(x.dtype)   # (OH, H)
    Aw = bilinear_matrix(W, size[1], align_corners, _scale(scales, 1)).astype(x.dtype)   # (OW, W)
    # y[n,c,i,j] = sum_h sum_w Ah[i,h] x[n,c,h,w] Aw[j,w]; einsum with optimize=True contracts one axis
    # at a time with BLAS products (a plain Ah @ x @ Aw.T broadcasts over N*C small products, ~10x slower).
    return np.einsum("ih,nchw,jw->ncij", Ah, x, Aw, optimize=True)                         # (N,C,OH,OW)


def bilinear_backward(dy, input_size, align_corners, scales=None):
    """dx (N,C,H,W) = Ah^T @ dy @ Aw: the forward's transpose.

    Entry (h, w) of Ah^T dy Aw is sum over (oh, ow) of Ah[oh, h] Aw[ow, w] dy[oh, ow]: every
    output gradient added to each of its 4 source pixels with its bilinear weight. That sum is
    the scatter-add which the cpu and cuda kernels perform one output pixel at a time.
    """
    OH, OW = dy.shape[2:]
    H, W = input_size
    Ah = bilinear_matrix(H, OH, align_corners, _scale(scales, 0)).astype(dy.dtype)   # (OH, H)
    Aw = bilinear_matrix(W, OW, align_corners, _scale(scales, 1)).astype(dy.dtype)   # (OW, W)
    return np.einsum("ih,ncij,jw->nchw", Ah, dy, Aw, optimize=True)                   # (N,C,H,W)


def nearest_forward(x, size, scales=None):
    """y (N,C,OH,OW) = x[:, :, ih(oh), iw(ow)]; works for any dtype (labels too)."""
    H, W = x.shape[2:]
    ih = nearest_source(H, size[0], _scale(scales, 0))
    iw = nearest_source(W, size[1], _scale(scales, 1))
    return x[:, :, ih[:, None], iw]


def nearest_backward(dy, input_size, scales=None):
    """dx (N,C,H,W) = sum of dy over the outputs that copied each input pixel."""
    N, C, OH, OW = dy.shape
    H, W = input_size
    ih = nearest_source(H, OH, _scale(scales, 0))
    iw = nearest_source(W, OW, _scale(scales, 1))
    dx = np.zeros((N, C, H, W), dtype=dy.dtype)
    np.add.at(dx, (slice(None), slice(None), ih[:, None], iw), dy)
    return dx
