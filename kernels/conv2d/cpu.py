"""conv2d, CPU variant: Numba loops for im2col / col2im, the BLAS for the products (math in __init__.py).

Memory layout is chosen so that every loop writes contiguous memory and every GEMM gets
contiguous operands:
- im2col fills the C_in*KH*KW rows of cols (N*OH*OW contiguous floats each), one row at a time:
  the rows are independent, so they can be shared out between threads (prange).
- col2im works on the N*C_in input planes one at a time; a plane is owned by one thread, which
  adds in the entries of all its taps, so there are no write conflicts and no atomics.
- Along a row of output pixels, the taps that fall inside the input form one interval
  [ow_lo, ow_hi) (outside it they see padding), so the inner loops have no per-pixel branch.
- Images go through in groups (COLS_BUDGET): the GEMM of a group, (C_out, C_in*KH*KW) @
  (C_in*KH*KW, g*OH*OW), is still large enough for the BLAS to run at full speed, cols stays a
  few MB instead of hundreds, and it is still in cache when the GEMM reads it. With one image per
  group, the GEMM's output is already y[n] in (C_out, OH, OW) layout.

All jitted functions are defined at module level with cache=True: compiled once per dtype, and
the machine code is kept on disk for the next process.

conv2d_forward and conv2d_backward are also where the algorithm is chosen (algorithm.py): 3x3
stride-1 convolutions with enough channels and large enough maps go to Winograd (winograd.py),
the rest to im2col below. MINIPSP_CONV=im2col|winograd|winograd2|winograd4 forces one.
"""

import numpy as np
from numba import njit, prange, uint64

from . import algorithm, threads, winograd
from .reference import output_size


@njit(cache=True, inline="always")
def _inside(offset, stride, size, out_size):
    """The interval [lo, hi) of output positions o with 0 <= o*stride + offset < size."""
    lo = max(0, (-offset + stride - 1) // stride)
    hi = min(out_size, (size - 1 - offset) // stride + 1)
    return lo, max(lo, hi)


# The loops index flat arrays with unsigned offsets (x and dx seen as (N*C*H*W,), cols as
# (rows*columns,)), for the two reasons winograd_strips.py gives: a slice such as x[n, c, ih, a:b:sw]
# is an array view, whose reference count Numba takes and drops with atomic instructions (one view
# per row of output pixels, 18 K per image of the 3x3 stride-2 benchmark), and a signed index gets a
# "negative counts from the end" test on every access, which keeps LLVM from loading whole vectors.
# The stride-1 and stride-2 copies are written out as their own loops so that LLVM sees the constant
# step (contiguous loads, or a load of two vectors and a shuffle) instead of a gather.
@njit(cache=True, inline="always")
def _copy_strided(src, s, step, dst, d, count):
    """dst[d + i] = src[s + i*step] for i < count (s, d unsigned offsets)."""
    if step == 1:
        for i in range(count):
            dst[d + uint64(i)] = src[s + uint64(i)]
    elif step == 2:
        for i in range(count):
            dst[d + uint64(i)] = src[s + uint64(2 * i)]
    else:
        for i in range(count):
            dst[d + uint64(i)] = src[s + uint64(i * step)]


@njit(cache=True, inline="always")
def _add_strided(src, s, dst, d, step, count):
    """dst[d + i*step] += src[s + i] for i < count (s, d unsigned offsets)."""
    if step == 1:
        for i in range(count):
            dst[d + uint64(i)] += src[s + uint64(i)]
    elif step == 2:
        for i in range(count):
            dst[d + uint64(2 * i)] += src[s + uint64(i)]
    else:
        for i in range(count):
            dst[d + uint64(i * step)] += src[s + uint64(i)]


@njit(cache=True, inline="always")
def _zero(dst, d, count):
    for i in range(count):
        dst[d + uint64(i)] = 0


@njit(cache=True)
def _im2col_row(x, x_shape, cols, row, geometry):
    """Fill row `row` = (c*KH + kh)*KW + kw of cols (C*KH*KW, N*OH*OW) from x (N, C, H, W), both flat."""
    KH, KW, sh, sw, ph, pw, dh, dw, OH, OW = geometry
    N, C, H, W = x_shape
    c, kh, kw = row // (KH * KW), (row // KW) % KH, row % KW
    left = kw * dw - pw                           # input column seen at ow: ow*sw + left
    ow_lo, ow_hi = _inside(left, sw, W, OW)
    row_start = uint64(row) * uint64(N * OH * OW)
    for n in range(N):
        for oh in range(OH):
            start = row_start + uint64((n * OH + oh) * OW)
            ih = oh * sh - ph + kh * dh
            if ih < 0 or ih >= H:                 # the whole row of taps sees padding
                _zero(cols, start, OW)
                continue
            _zero(cols, start, ow_lo)
            first = uint64(((n * C + c) * H + ih) * W + ow_lo * sw + left)
            _copy_strided(x, first, sw, cols, start + uint64(ow_lo), ow_hi - ow_lo)
            _zero(cols, start + uint64(ow_hi), OW - ow_hi)


@njit(cache=True)
def _col2im_plane(cols, dx, dx_shape, plane, geometry):
    """dx[n, c] for plane = n*C + c (both flat): the sum of the entries of cols copied from each of its pixels."""
    KH, KW, sh, sw, ph, pw, dh, dw, OH, OW = geometry
    N, C, H, W = dx_shape
    n, c = plane // C, plane % C
    plane_start = uint64(plane * H * W)
    _zero(dx, plane_start, H * W)
    for kh in range(KH):
        for kw in range(KW):
            row = (c * KH + kh) * KW + kw
            left = kw * dw - pw
            ow_lo, ow_hi = _inside(left, sw, W, OW)
            for oh in range(OH):
                ih = oh * sh - ph + kh * dh
                if ih < 0 or ih >= H:             # these entries came from padding: dropped
                    continue
                start = uint64(row * N * OH * OW + (n * OH + oh) * OW + ow_lo)
                first = plane_start + uint64(ih * W + ow_lo * sw + left)
                _add_strided(cols, start, dx, first, sw, ow_hi - ow_lo)


# Each loop exists twice, serial and parallel (prange over rows or planes), and the parallel one
# is used only for a cols of at least PARALLEL_MIN_SIZE elements. A parallel loop is as slow as its
# slowest thread: on a small array (a gradient check calls conv2d thousands of times on a few
# hundred pixels) waking the threads costs more than the work, and on a busy machine one thread
# that is not scheduled stalls the whole loop. Measured on a 2-core machine shared with other jobs,
# for one image of the 3x3 dilation-2 benchmark (cols 576 x 4096): the parallel im2col took 0.9 ms
# at best but 13-28 ms typically, the serial one 1.8 ms every time; the whole forward + backward was
# 1.8x faster with serial loops. The GEMMs, which are 3/4 of the time, use all cores either way.
PARALLEL_MIN_SIZE = 1 << 23   # elements of cols (32 MB in float32)


# (x, cols and dx are C-contiguous here, so the reshapes to flat arrays are views, made once a call.)
@njit(cache=True, parallel=True)
def _im2col_parallel(x, cols, geometry):
    x_flat, cols_flat = x.reshape(x.size), cols.reshape(cols.size)
    for row in prange(cols.shape[0]):
        _im2col_row(x_flat, x.shape, cols_flat, row, geometry)


@njit(cache=True, nogil=True)
def _im2col_serial(x, cols, geometry):
    x_flat, cols_flat = x.reshape(x.size), cols.reshape(cols.size)
    for row in range(cols.shape[0]):
        _im2col_row(x_flat, x.shape, cols_flat, row, geometry)


@njit(cache=True, parallel=True)
def _col2im_parallel(cols, dx, geometry):
    cols_flat, dx_flat = cols.reshape(cols.size), dx.reshape(dx.size)
    for plane in prange(dx.shape[0] * dx.shape[1]):
        _col2im_plane(cols_flat, dx_flat, dx.shape, plane, geometry)


@njit(cache=True, nogil=True)
def _col2im_serial(cols, dx, geometry):
    cols_flat, dx_flat = cols.reshape(cols.size), dx.reshape(dx.size)
    for plane in range(dx.shape[0] * dx.shape[1]):
        _col2im_plane(cols_flat, dx_flat, dx.shape, plane, geometry)


# Bytes of cols per GEMM. Images go through in groups so that cols stays this small: a whole batch
# at once would need C_in*KH*KW*N*OH*OW floats (530 MB for one 3x3 conv of PSPNet's layer4 at batch
# 8), and a cols that fits in the last-level cache (32 MB on the machine we measured) is still there
# when the GEMM reads it. Small feature maps are still done as one GEMM over the whole batch.
# 20 MB (two images of the 3x3 benchmark, 9.4 MB each) was the fastest on a 2-core machine: one
# image per GEMM was 1.3x slower with two BLAS threads (more, smaller GEMMs to synchronise), the
# whole batch at once 1.2x slower with one (cols no longer in cache).
COLS_BUDGET = 20 << 20


def _sizes(x_shape, kernel_size, stride, padding, dilation):
    H, W = x_shape[2], x_shape[3]
    return (output_size(H, kernel_size[0], stride[0], padding[0], dilation[0]),
            output_size(W, kernel_size[1], stride[1], padding[1], dilation[1]))


def _image_groups(N, cols_bytes_per_image):
    """[(n0, n1), ...] covering range(N), each group small enough for COLS_BUDGET (at least one image)."""
    size = max(1, min(N, COLS_BUDGET // max(1, cols_bytes_per_image)))
    return [(n0, min(N, n0 + size)) for n0 in range(0, N, size)]


# One image per worker thread, each with a one-thread BLAS (threads.py), as Winograd does: each
# worker makes one image's cols (serial loop), multiplies it, and writes the product straight into
# y[n], which is already (C_out, OH*OW); backward likewise, each image's dw summed in image order (so
# that the result does not depend on which worker ran which image: `make demo` learns the same model
# every run).
# Compared with the grouped path (a prange im2col over 2-image groups, then a two-thread GEMM) this
# drops the barrier after every loop and GEMM, the transposes of y and dy between (C_out, g*OH*OW)
# and (g, C_out, OH*OW), and a cols that outgrew the cache: measured 2026-12-03 on 2 cores,
# 8 x 64 x 64 x 64 -> 128, 3x3 stride 2, forward + backward: one image's cols by the serial loop
# 0.98 ms against 11.2 ms for the whole batch's by the parallel one (1.4 ms an image); the whole
# forward 23 -> 17 ms, backward 42 -> 35 ms (torch 32 ms for both). A 1x1 conv (x[n] is its cols)
# goes the same way: 8 x 256 x 64 x 64 -> 64, forward 13.9-15.7 -> 12.9-14.7 ms, backward 25.8-26.0
# -> 19.9-22.7 ms, against one batched GEMM and a loop of per-image GEMMs on two BLAS threads. Taken for
# at least THREADED_MIN_IMAGES_PER_WORKER images a worker, THREADED_MIN_COLS elements of cols an image
# (a gradient check's tiny arrays stay on the plain path, where waking threads costs more) and a
# weight no larger than an image's cols (_threaded says why).
THREADED_MIN_IMAGES_PER_WORKER = 2
THREADED_MIN_COLS = 1 << 16


def _threaded(N, cols_per_image, weight_size):
    """The worker pool if this im2col call goes one image per thread, else None. Each image's GEMM
    reads the whole weight, so a weight larger than an image's cols (PSPNet's 1024 -> 512 head on
    `make demo`'s 7 x 7 maps: 4.7 M weights against 451 K of cols) stays on the grouped path, whose
    one GEMM reads it once for the group; taken there, it made the demo's steps 10% slower."""
    workers = threads.pool()
    if workers is None or cols_per_image < THREADED_MIN_COLS or weight_size > cols_per_image \
            or N < THREADED_MIN_IMAGES_PER_WORKER * max(1, threads.workers()):
        return None
    return workers


def _each_image(workers, N, work):
    """[work(n) for n in range(N)], the images shared out between the workers, with one BLAS thread
    each. The results come back in image order whichever worker ran them, so a sum over them (dw)
    is the same from run to run."""
    with threads.one_blas_thread():
        return list(workers.map(work, range(N)))


def _sum(parts, like):
    """parts[0] + parts[1] + ... in this order (in place in parts[0]); zeros like `like` if empty."""
    total = parts[0].astype(like.dtype, copy=False) if parts else np.zeros_like(like)
    for part in parts[1:]:
        total += part
    return total


def _geometry(x_shape, kernel_size, stride, padding, dilation):
    """The integers the loops need, as one tuple: (KH, KW, sh, sw, ph, pw, dh, dw, OH, OW)."""
    return (*kernel_size, *stride, *padding, *dilation, *_sizes(x_shape, kernel_size, stride, padding, dilation))


def _fill_cols(x, cols, geometry):
    (_im2col_parallel if cols.size >= PARALLEL_MIN_SIZE else _im2col_serial)(x, cols, geometry)


def _add_cols(cols, dx, geometry):
    (_col2im_parallel if cols.size >= PARALLEL_MIN_SIZE else _col2im_serial)(cols, dx, geometry)


def im2col(x, kernel_size, stride, padding, dilation):
    """x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW); cols[(c*KH+kh)*KW+kw, (n*OH+oh)*OW+ow]."""
    N, C = x.shape[:2]
    geometry = _geometry(x.shape, kernel_size, stride, padding, dilation)
    OH, OW = geometry[-2:]
    cols = np.empty((C * kernel_size[0] * kernel_size[1], N * OH * OW), dtype=x.dtype)
    _fill_cols(np.ascontiguousarray(x), cols, geometry)
    return cols


def col2im(cols, x_shape, kernel_size, stride, padding, dilation):
    """The adjoint of im2col: cols (C*KH*KW, N*OH*OW) -> dx (N, C, H, W), summing repeated pixels."""
    dx = np.empty(x_shape, dtype=cols.dtype)
    _add_cols(np.ascontiguousarray(cols), dx, _geometry(x_shape, kernel_size, stride, padding, dilation))
    return dx


def _group_cols(x, kernel_size, stride, padding, dilation):
    """im2col of a group of images; for one image and a 1x1 kernel with stride 1 and no padding,
    cols is x itself seen as a (C, H*W) matrix, so nothing is copied."""
    if _pointwise(kernel_size, stride, padding) and x.shape[0] == 1:
        return x.reshape(x.shape[1], -1)
    return im2col(x, kernel_size, stride, padding, dilation)


def _pointwise(kernel_size, stride, padding):
    """A 1x1 kernel with stride 1 and no padding: a matrix product per image, y[n] = W x[n] (C, H*W)."""
    return tuple(kernel_size) == (1, 1) and tuple(stride) == (1, 1) and tuple(padding) == (0, 0)


# A 1x1 conv (half of a bottleneck ResNet's convolutions) needs no cols at all: x[n] seen as a (C_in,
# H*W) matrix is its cols, and W x[n] comes out as y[n]. With one GEMM over a group of images (the
# general path) the group's columns had to be gathered into cols and the product scattered back
# into (N, C_out, OH, OW), and dx went through col2im: three copies of each activation per step.
def _pointwise_forward(x, w_mat):
    N, C_in, H, W = x.shape
    C_out = w_mat.shape[0]
    y = np.empty((N, C_out, H, W), dtype=x.dtype)
    x_mats, y_mats = x.reshape(N, C_in, H * W), y.reshape(N, C_out, H * W)   # (no -1: N may be 0)
    workers = _threaded(N, C_in * H * W, w_mat.size)
    if workers is not None:
        _each_image(workers, N, lambda n: np.matmul(w_mat, x_mats[n], out=y_mats[n]))
    else:
        np.matmul(w_mat, x_mats, out=y_mats)
    return y


def _pointwise_backward(dy, x, w_mat, needs_input_grad, needs_weight_grad):
    """dx[n] = W^T dy[n]; dw = sum over n of dy[n] x[n]^T (a GEMM per image, summed in place)."""
    N, C_in, H, W = x.shape
    dy_mats, x_mats = dy.reshape(N, w_mat.shape[0], H * W), x.reshape(N, C_in, H * W)
    dx = dw_mat = None
    workers = _threaded(N, C_in * H * W, w_mat.size)
    if workers is not None:          # one image per thread, as the general path's (THREADED_MIN_COLS)
        dx = np.empty_like(x) if needs_input_grad else None

        def one_image(n):
            if needs_input_grad:
                np.matmul(w_mat.T, dy_mats[n], out=dx.reshape(N, C_in, H * W)[n])
            return np.matmul(dy_mats[n], x_mats[n].T) if needs_weight_grad else None
        parts = _each_image(workers, N, one_image)
        return dx, _sum(parts, w_mat) if needs_weight_grad else None
    if needs_input_grad:
        dx = np.empty_like(x)
        np.matmul(w_mat.T, dy_mats, out=dx.reshape(N, C_in, H * W))
    if needs_weight_grad:
        dw_mat = np.zeros_like(w_mat)
        product = np.empty_like(w_mat)
        for n in range(N):
            dw_mat += np.matmul(dy_mats[n], x_mats[n].T, out=product)
    return dx, dw_mat


def conv2d_forward(x, weight, bias, stride, padding, dilation):
    """y (N, C_out, OH, OW) = conv(x (N, C_in, H, W), weight (C_out, C_in, KH, KW)) + bias (C_out,) or None."""
    forward_algorithm, _ = algorithm.choose(x.shape, weight.shape, stride, padding, dilation)
    if forward_algorithm != "im2col":
        return winograd.conv2d_forward(x, weight, bias, padding, dilation, algorithm.tile_size(forward_algorithm))
    x = np.ascontiguousarray(x)
    N = x.shape[0]
    C_out, _, KH, KW = weight.shape
    OH, OW = _sizes(x.shape, (KH, KW), stride, padding, dilation)
    w_mat = np.ascontiguousarray(weight).reshape(C_out, -1)                # C_out, C_in*KH*KW
    if _pointwise((KH, KW), stride, padding):
        y = _pointwise_forward(x, w_mat)
        if bias is not None:
            y += bias.reshape(1, C_out, 1, 1)
        return y
    y = np.empty((N, C_out, OH, OW), dtype=x.dtype)
    workers = _threaded(N, w_mat.shape[1] * OH * OW, w_mat.size)
    if workers is not None:
        geometry = _geometry(x.shape, (KH, KW), stride, padding, dilation)

        def one_image(n):
            cols = np.empty((w_mat.shape[1], OH * OW), dtype=x.dtype)
            _im2col_serial(x[n:n + 1], cols, geometry)
            np.matmul(w_mat, cols, out=y[n].reshape(C_out, OH * OW))
        _each_image(workers, N, one_image)
        if bias is not None:
            y += bias.reshape(1, C_out, 1, 1)
        return y
    for n0, n1 in _image_groups(N, w_mat.shape[1] * OH * OW * x.itemsize):
        cols = _group_cols(x[n0:n1], (KH, KW), stride, padding, dilation)  # C_in*KH*KW, g*OH*OW
        y_mat = np.matmul(w_mat, cols)                                     # C_out, g*OH*OW
        y[n0:n1] = y_mat.reshape(C_out, n1 - n0, OH, OW).transpose(1, 0, 2, 3)
    if bias is not None:
        y += bias.reshape(1, C_out, 1, 1)
    return y


def conv2d_backward(dy, x, weight, stride, padding, dilation,
                    needs_input_grad=True, needs_weight_grad=True, needs_bias_grad=True):
    """(dx, dw, db) from dy (N, C_out, OH, OW); each is None when its flag is False.

    cols is recomputed from x rather than saved by forward: it is KH*KW times the size of x.
    """
    input_algorithm, weight_algorithm = algorithm.choose(x.shape, weight.shape, stride, padding, dilation)
    im2col_input = needs_input_grad and input_algorithm == "im2col"
    im2col_weight = needs_weight_grad and weight_algorithm == "im2col"
    dx, dw = _im2col_backward(dy, x, weight, stride, padding, dilation, im2col_input, im2col_weight)
    if needs_input_grad and not im2col_input:
        dx = winograd.conv2d_input_grad(dy, weight, x.shape, padding, dilation, algorithm.tile_size(input_algorithm))
    if needs_weight_grad and not im2col_weight:
        dw = winograd.conv2d_weight_grad(dy, x, weight.shape, padding, dilation,
                                         algorithm.tile_size(weight_algorithm))
    db = dy.sum(axis=(0, 2, 3)) if needs_bias_grad else None
    return dx, dw, db


def _im2col_backward(dy, x, weight, stride, padding, dilation, needs_input_grad, needs_weight_grad):
    """(dx, dw) by im2col: dw = dy_mat @ cols^T, dx = col2im(w_mat^T @ dy_mat), per group of images."""
    if not (needs_input_grad or needs_weight_grad):
        return None, None
    x, dy = np.ascontiguousarray(x), np.ascontiguousarray(dy)
    N, _, OH, OW = dy.shape
    C_out, _, KH, KW = weight.shape
    w_mat = np.ascontiguousarray(weight).reshape(C_out, -1)                # C_out, C_in*KH*KW
    if _pointwise((KH, KW), stride, padding):
        dx, dw_mat = _pointwise_backward(dy, x, w_mat, needs_input_grad, needs_weight_grad)
        return dx, None if dw_mat is None else dw_mat.reshape(weight.shape)
    geometry = _geometry(x.shape, (KH, KW), stride, padding, dilation)
    dx = np.empty_like(x) if needs_input_grad else None
    workers = _threaded(N, w_mat.shape[1] * OH * OW, w_mat.size)
    if workers is not None:
        def one_image(n):
            dy_mat = dy[n].reshape(C_out, OH * OW)                         # already C_out, OH*OW
            dw_part = None
            if needs_weight_grad:
                cols = np.empty((w_mat.shape[1], OH * OW), dtype=x.dtype)
                _im2col_serial(x[n:n + 1], cols, geometry)
                dw_part = np.matmul(dy_mat, cols.T)
                del cols
            if needs_input_grad:
                _col2im_serial(np.matmul(w_mat.T, dy_mat), dx[n:n + 1], geometry)
            return dw_part
        parts = _each_image(workers, N, one_image)
        return dx, _sum(parts, w_mat).reshape(weight.shape) if needs_weight_grad else None
    dw_mat = np.zeros_like(w_mat) if needs_weight_grad else None          # C_out, C_in*KH*KW
    for n0, n1 in _image_groups(N, w_mat.shape[1] * OH * OW * x.itemsize):
        dy_mat = dy[n0:n1].transpose(1, 0, 2, 3).reshape(C_out, -1)        # C_out, g*OH*OW
        if needs_weight_grad:
            cols = _group_cols(x[n0:n1], (KH, KW), stride, padding, dilation)
            # dw = dy_mat @ cols^T, in this order so that dw comes out in weight's layout: computing
            # its transpose and copying it back took 3x longer at layer4's 9x9 maps (a 9 MB transpose)
            dw_mat += np.matmul(dy_mat, cols.T)
            del cols                                                       # its memory goes to dcols
        if needs_input_grad:
            dcols = np.matmul(w_mat.T, dy_mat)                             # C_in*KH*KW, g*OH*OW
            _add_cols(dcols, dx[n0:n1], geometry)                          # g, C_in, H, W
    dw = dw_mat.reshape(weight.shape) if needs_weight_grad else None
    return dx, dw
