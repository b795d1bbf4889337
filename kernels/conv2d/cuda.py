"""conv2d, CUDA variant: Numba CUDA kernels for im2col / col2im, cuBLAS for the products (math in __init__.py).

- im2col: one thread per entry of cols (C_in*KH*KW, N*OH*OW). Consecutive threads fill
  consecutive columns of a row, so the writes are coalesced.
- col2im: one thread per input pixel (n, c, h, w), which gathers the entries of cols that were
  copied from it (at most KH*KW of them) and writes its sum once: no atomics, no races, and the
  result does not depend on the order in which threads run.
- The products go through xp.matmul: cuBLAS for CuPy arrays.

The launchers have the same names, arguments and results as reference.py and cpu.py. They allocate
their outputs with the input's array module: CuPy on a GPU; NumPy under Numba's CUDA simulator
(NUMBA_ENABLE_CUDASIM=1), where the kernels run on NumPy arrays with one Python thread per GPU thread.
"""

import math

from numba import cuda

from .. import array_module
from .reference import output_size

THREADS_PER_BLOCK = 256


@cuda.jit
def _im2col_kernel(x, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW, cols):
    """cols[(c*KH+kh)*KW+kw, (n*OH+oh)*OW+ow] = x[n, c, oh*sh-ph+kh*dh, ow*sw-pw+kw*dw], or 0 in the padding."""
    i = cuda.grid(1)
    rows, columns = cols.shape
    if i >= rows * columns:
        return
    row, column = i // columns, i % columns
    c, kh, kw = row // (KH * KW), (row // KW) % KH, row % KW
    n, oh, ow = column // (OH * OW), (column // OW) % OH, column % OW
    ih = oh * sh - ph + kh * dh
    iw = ow * sw - pw + kw * dw
    if 0 <= ih < x.shape[2] and 0 <= iw < x.shape[3]:
        cols[row, column] = x[n, c, ih, iw]
    else:
        cols[row, column] = 0


@cuda.jit
def _col2im_kernel(cols, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW, dx):
    """dx[n, c, h, w] = sum of cols over the taps (kh, kw) whose output position (oh, ow) saw pixel (h, w)."""
    i = cuda.grid(1)
    N, C, H, W = dx.shape
    if i >= N * C * H * W:
        return
    n, c, h, w = i // (C * H * W), (i // (H * W)) % C, (i // W) % H, i % W
    total = cols[0, 0] * 0  # a zero of cols' dtype: float32 sums stay float32 on the GPU
    for kh in range(KH):
        # Tap kh of output row oh sees padded row oh*sh + kh*dh, i.e. input row h when
        # h + ph - kh*dh = oh*sh for a whole oh in [0, OH).
        th = h + ph - kh * dh
        if th < 0 or th % sh != 0 or th // sh >= OH:
            continue
        oh = th // sh
        for kw in range(KW):
            tw = w + pw - kw * dw
            if tw < 0 or tw % sw != 0 or tw // sw >= OW:
                continue
            ow = tw // sw
            total += cols[(c * KH + kh) * KW + kw, (n * OH + oh) * OW + ow]
    dx[n, c, h, w] = total


def _blocks(total):
    return math.ceil(total / THREADS_PER_BLOCK)


def _sizes(x_shape, kernel_size, stride, padding, dilation):
    H, W = x_shape[2], x_shape[3]
    return (output_size(H, kernel_size[0], stride[0], padding[0], dilation[0]),
            output_size(W, kernel_size[1], stride[1], padding[1], dilation[1]))


def im2col(x, kernel_size, stride, padding, dilation):
    """x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW); cols[(c*KH+kh)*KW+kw, (n*OH+oh)*OW+ow]."""
    xp = array_module(x)
    N, C = x.shape[:2]
    OH, OW = _sizes(x.shape, kernel_size, stride, padding, dilation)
    x = xp.ascontiguousarray(x)
    cols = xp.empty((C * kernel_size[0] * kernel_size[1], N * OH * OW), dtype=x.dtype)
    if cols.size:
        _im2col_kernel[_blocks(cols.size), THREADS_PER_BLOCK](
            x, *kernel_size, *stride, *padding, *dilation, OH, OW, cols)
    return cols


def col2im(cols, x_shape, kernel_size, stride, padding, dilation):
    """The adjoint of im2col: cols (C*KH*KW, N*OH*OW) -> dx (N, C, H, W), summing repeated pixels."""
    xp = array_module(cols)
    OH, OW = _sizes(x_shape, kernel_size, stride, padding, dilation)
    cols = xp.ascontiguousarray(cols)
    dx = xp.zeros(tuple(x_shape), dtype=cols.dtype)
    if dx.size and cols.size:
        _col2im_kernel[_blocks(dx.size), THREADS_PER_BLOCK](
            cols, *kernel_size, *stride, *padding, *dilation, OH, OW, dx)
    return dx


def conv2d_forward(x, weight, bias, stride, padding, dilation):
    """y (N, C_out, OH, OW) = conv(x (N, C_in, H, W), weight (C_out, C_in, KH, KW)) + bias (C_out,) or None."""
    xp = array_module(x)
    N = x.shape[0]
    C_out, _, KH, KW = weight.shape
    OH, OW = _sizes(x.shape, (KH, KW), stride, padding, dilation)
    cols = im2col(x, (KH, KW), stride, padding, dilation)                # C_in*KH*KW, N*OH*OW
    y_mat = xp.matmul(xp.ascontiguousarray(weight).reshape(C_out, -1), cols)  # C_out, N*OH*OW
    y = y_mat.reshape(C_out, N, OH, OW).transpose(1, 0, 2, 3)             # N, C_out, OH, OW
    if bias is not None:
        y = y + bias.reshape(1, C_out, 1, 1)
    return xp.ascontiguousarray(y)


def conv2d_backward(dy, x, weight, stride, padding, dilation,
                    needs_input_grad=True, needs_weight_grad=True, needs_bias_grad=True):
    """(dx, dw, db) from dy (N, C_out, OH, OW); each is None when its flag is False.

    cols is recomputed from x rather than saved by forward: it is KH*KW times the size of x.
    """
    xp = array_module(dy)
    C_out, _, KH, KW = weight.shape
    dy_mat = dy.transpose(1, 0, 2, 3).reshape(C_out, -1)                  # C_out, N*OH*OW
    dx = dw = db = None
    if needs_weight_grad:
        cols = im2col(x, (KH, KW), stride, padding, dilation)            # C_in*KH*KW, N*OH*OW
        dw = xp.matmul(dy_mat, cols.T).reshape(weight.shape)
        del cols
    if needs_input_grad:
        w_mat = xp.ascontiguousarray(weight).reshape(C_out, -1)
        dcols = xp.matmul(w_mat.T, dy_mat)                                # C_in*KH*KW, N*OH*OW
        dx = col2im(dcols, x.shape, (KH, KW), stride, padding, dilation)
    if needs_bias_grad:
        db = dy.sum(axis=(0, 2, 3))
    return dx, dw, db
