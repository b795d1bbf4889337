"""conv2d, CUDA variant: Numba CUDA kernels for im2col / col2im, cuBLAS for the products (math in __init__.py).

- im2col: one thread per entry of cols (C_in*KH*KW, g*OH*OW). Consecutive threads fill
  consecutive columns of a row, so the writes are coalesced.
- col2im: one thread per input pixel (n, c, h, w), which gathers the entries of cols that were
  copied from it (at most KH*KW of them) and writes its sum once: no atomics, no races, and the
  result does not depend on the order in which threads run.
- The products go through xp.matmul: cuBLAS for CuPy arrays.
- Images go through in groups of g (COLS_BUDGET), as in cpu.py, so that cols stays a few hundred MB
  however large the batch: forward and dx group by group, dw summed over the groups.

The launchers have the same names, arguments and results as reference.py and cpu.py. They allocate
their outputs with the input's array module: CuPy on a GPU; NumPy under Numba's CUDA simulator
(NUMBA_ENABLE_CUDASIM=1), where the kernels run on NumPy arrays with one Python thread per GPU thread.
The integer arguments are passed as Python ints and the zero of col2im as a scalar of the array's
dtype, so each kernel compiles once per dtype, whatever types the caller's hyper-parameters had.
"""

import math

from numba import cuda

from .. import array_module
from .reference import output_size

THREADS_PER_BLOCK = 256

# Bytes of cols per GEMM. One im2col for a whole batch is (C_in*KH*KW) x (N*OH*OW) floats: for
# PSPNet-50 at 473 px, batch 8 (60x60 feature maps), that is 531 MB for a 3x3 conv of layer4
# (C_in 512) and 4.2 GB for the 3x3 conv of the head (C_in 4096), with as much again for dcols in
# backward. Those are transient buffers on top of the activations kept for backward, and they
# decide whether a batch fits on a 24 GB card. In groups, cols and dcols take at most this much
# (or one image, if one image is more); CuPy's memory pool hands the same block to every group.
# 256 MB still gives cuBLAS large products: at least 14k columns for a 3x3 conv on 512 channels,
# and the head's 3600 columns of one image are 136 GFLOP, far past the size where a GEMM reaches
# full speed, so grouping costs a few extra launches, not GEMM efficiency. (Not yet timed on a GPU.)
COLS_BUDGET = 256 << 20


@cuda.jit
def _im2col_kernel(x, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW, cols):
    """cols[(c*KH+kh)*KW+kw, (n*OH+oh)*OW+ow] = x[n, c, oh*sh-ph+kh*dh, ow*sw-pw+kw*dw], or 0 in the padding."""
    i = cuda.grid(1)  # int64 in Numba, so i cannot overflow for cols of more than 2**31 entries
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
def _col2im_kernel(cols, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW, zero, dx):
    """dx[n, c, h, w] = sum of cols over the taps (kh, kw) whose output position (oh, ow) saw pixel (h, w).

    `zero` is 0 in cols' dtype: starting the sum from it keeps float32 sums in float32 (a literal
    0.0 would make them float64). Starting from cols[0, 0] * 0 instead would turn every pixel's
    sum into NaN as soon as that one entry is inf or NaN.
    """
    i = cuda.grid(1)
    N, C, H, W = dx.shape
    if i >= N * C * H * W:
        return
    n, c, h, w = i // (C * H * W), (i // (H * W)) % C, (i // W) % H, i % W
    total = zero
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


def _geometry(x_shape, kernel_size, stride, padding, dilation):
    """(KH, KW, sh, sw, ph, pw, dh, dw, OH, OW) as Python ints: NumPy integers of another width
    (say stride given as np.int32) would compile the kernels a second time."""
    sizes = _sizes(x_shape, kernel_size, stride, padding, dilation)
    return tuple(int(v) for v in (*kernel_size, *stride, *padding, *dilation, *sizes))


def _image_groups(N, cols_bytes_per_image):
    """[(n0, n1), ...] covering range(N), each group small enough for COLS_BUDGET (at least one image)."""
    size = max(1, min(N, COLS_BUDGET // max(1, cols_bytes_per_image)))
    return [(n0, min(N, n0 + size)) for n0 in range(0, N, size)]


def _fill_cols(x, cols, geometry):
    """Launch im2col on C-contiguous x (g, C, H, W) into cols (C*KH*KW, g*OH*OW)."""
    if cols.size:  # a grid of 0 blocks is an error on a real GPU (the simulator just runs nothing)
        _im2col_kernel[_blocks(cols.size), THREADS_PER_BLOCK](x, *geometry, cols)


def _add_cols(cols, dx, geometry):
    """Launch col2im from C-contiguous cols (C*KH*KW, g*OH*OW) into dx (g, C, H, W), every pixel written."""
    if dx.size == 0:
        return
    if cols.size == 0:  # no output positions (or no taps): nothing reaches x
        dx[...] = 0
        return
    _col2im_kernel[_blocks(dx.size), THREADS_PER_BLOCK](cols, *geometry, cols.dtype.type(0), dx)


def im2col(x, kernel_size, stride, padding, dilation):
    """x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW); cols[(c*KH+kh)*KW+kw, (n*OH+oh)*OW+ow]."""
    xp = array_module(x)
    N, C = x.shape[:2]
    geometry = _geometry(x.shape, kernel_size, stride, padding, dilation)
    OH, OW = geometry[-2:]
    cols = xp.empty((C * kernel_size[0] * kernel_size[1], N * OH * OW), dtype=x.dtype)
    _fill_cols(xp.ascontiguousarray(x), cols, geometry)
    return cols


def col2im(cols, x_shape, kernel_size, stride, padding, dilation):
    """The adjoint of im2col: cols (C*KH*KW, N*OH*OW) -> dx (N, C, H, W), summing repeated pixels."""
    xp = array_module(cols)
    dx = xp.empty(tuple(x_shape), dtype=cols.dtype)
    _add_cols(xp.ascontiguousarray(cols), dx, _geometry(x_shape, kernel_size, stride, padding, dilation))
    return dx


def conv2d_forward(x, weight, bias, stride, padding, dilation):
    """y (N, C_out, OH, OW) = conv(x (N, C_in, H, W), weight (C_out, C_in, KH, KW)) + bias (C_out,) or None."""
    xp = array_module(x)
    x = xp.ascontiguousarray(x)
    N = x.shape[0]
    C_out, C_in, KH, KW = weight.shape
    geometry = _geometry(x.shape, (KH, KW), stride, padding, dilation)
    OH, OW = geometry[-2:]
    w_mat = xp.ascontiguousarray(weight).reshape(C_out, C_in * KH * KW)     # C_out, C_in*KH*KW
    y = xp.empty((N, C_out, OH, OW), dtype=x.dtype)
    for n0, n1 in _image_groups(N, w_mat.shape[1] * OH * OW * x.itemsize):
        cols = xp.empty((w_mat.shape[1], (n1 - n0) * OH * OW), dtype=x.dtype)  # C_in*KH*KW, g*OH*OW
        _fill_cols(x[n0:n1], cols, geometry)
        y_mat = xp.matmul(w_mat, cols)                                      # C_out, g*OH*OW
        y[n0:n1] = y_mat.reshape(C_out, n1 - n0, OH, OW).transpose(1, 0, 2, 3)
        del cols, y_mat                                                     # back to the pool for the next group
    if bias is not None:
        y += bias.reshape(1, C_out, 1, 1)
    return y


def conv2d_backward(dy, x, weight, stride, padding, dilation,
                    needs_input_grad=True, needs_weight_grad=True, needs_bias_grad=True):
    """(dx, dw, db) from dy (N, C_out, OH, OW); each is None when its flag is False.

    cols is recomputed from x rather than saved by forward: it is KH*KW times the size of x.
    Per group of g images: dw += dy_g @ cols_g^T and dx_g = col2im(w_mat^T @ dy_g).
    """
    xp = array_module(dy)
    x, dy = xp.ascontiguousarray(x), xp.ascontiguousarray(dy)
    N, _, OH, OW = dy.shape
    C_out, C_in, KH, KW = weight.shape
    geometry = _geometry(x.shape, (KH, KW), stride, padding, dilation)
    w_mat = xp.ascontiguousarray(weight).reshape(C_out, C_in * KH * KW)     # C_out, C_in*KH*KW
    dx = xp.empty_like(x) if needs_input_grad else None
    dw_mat = xp.zeros_like(w_mat) if needs_weight_grad else None            # C_out, C_in*KH*KW
    for n0, n1 in _image_groups(N, w_mat.shape[1] * OH * OW * x.itemsize):
        dy_mat = dy[n0:n1].transpose(1, 0, 2, 3).reshape(C_out, (n1 - n0) * OH * OW)  # C_out, g*OH*OW
        if needs_weight_grad:
            cols = xp.empty((w_mat.shape[1], (n1 - n0) * OH * OW), dtype=x.dtype)
            _fill_cols(x[n0:n1], cols, geometry)
            dw_mat += xp.matmul(dy_mat, cols.T)
            del cols                                                        # its memory goes to dcols
        if needs_input_grad:
            dcols = xp.matmul(w_mat.T, dy_mat)                              # C_in*KH*KW, g*OH*OW
            _add_cols(xp.ascontiguousarray(dcols), dx[n0:n1], geometry)     # g, C_in, H, W
            del dcols
    dw = dw_mat.reshape(weight.shape) if needs_weight_grad else None
    db = dy.sum(axis=(0, 2, 3)) if needs_bias_grad else None
    return dx, dw, db
