"""Batch norm with Numba CUDA on CuPy arrays. Same functions and results as reference.py.

Per-channel reductions run one block per channel: each thread sums a strided slice of the
channel's N * H * W values into a register (consecutive threads read consecutive addresses, so
the loads coalesce), then the block adds its partial sums with a tree reduction in shared memory.
Elementwise maps (normalise, dx) run one thread per element.

Under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1) the same kernels run on NumPy arrays, so the
launchers allocate their outputs with the input's own array module.
"""

from __future__ import annotations

import math

from numba import cuda, float64

from .. import array_module

MAX_REDUCTION_THREADS = 256  # threads per block of a reduction, a power of two
ELEMENTWISE_THREADS = 128


@cuda.jit(device=True)
def _block_sum(partial, t, T):
    """Leave sum(partial[:T]) in partial[0]; T is a power of two and all T threads must call this."""
    stride = T // 2
    while stride > 0:
        if t < stride:
            partial[t] += partial[t + stride]
        cuda.syncthreads()
        stride //= 2


@cuda.jit
def _channel_mean_var_kernel(x, mean, var):
    """Block c: mean[c] and biased var[c] of x[:, c, :] (x is (N, C, L)); two passes over the channel."""
    c = cuda.blockIdx.x
    t = cuda.threadIdx.x
    T = cuda.blockDim.x
    N, C, L = x.shape
    M = N * L
    partial = cuda.shared.array(MAX_REDUCTION_THREADS, float64)

    total = 0.0
    for k in range(t, M, T):
        total += x[k // L, c, k % L]
    partial[t] = total
    cuda.syncthreads()
    _block_sum(partial, t, T)
    m = partial[0] / M
    cuda.syncthreads()  # every thread has read partial[0] before it is overwritten below

    squares = 0.0
    for k in range(t, M, T):
        d = x[k // L, c, k % L] - m
        squares += d * d
    partial[t] = squares
    cuda.syncthreads()
    _block_sum(partial, t, T)
    if t == 0:
        mean[c] = m
        var[c] = partial[0] / M


@cuda.jit
def _channel_backward_sums_kernel(dy, x, mean, rstd, sum_dy, sum_dy_xhat):
    """Block c: sum(dy) and sum(dy * xhat) over x[:, c, :], xhat recomputed from x."""
    c = cuda.blockIdx.x
    t = cuda.threadIdx.x
    T = cuda.blockDim.x
    N, C, L = x.shape
    partial_dy = cuda.shared.array(MAX_REDUCTION_THREADS, float64)
    partial_dy_xhat = cuda.shared.array(MAX_REDUCTION_THREADS, float64)

    m, r = mean[c], rstd[c]
    s_dy = 0.0
    s_dy_xhat = 0.0
    for k in range(t, N * L, T):
        n, i = k // L, k % L
        g = dy[n, c, i]
        s_dy += g
        s_dy_xhat += g * ((x[n, c, i] - m) * r)
    partial_dy[t] = s_dy
    partial_dy_xhat[t] = s_dy_xhat
    cuda.syncthreads()
    _block_sum(partial_dy, t, T)
    _block_sum(partial_dy_xhat, t, T)
    if t == 0:
        sum_dy[c] = partial_dy[0]
        sum_dy_xhat[c] = partial_dy_xhat[0]


@cuda.jit
def _affine_per_channel_kernel(x, center, scale, shift, y):
    """y[n, c, i] = (x[n, c, i] - center[c]) * scale[c] + shift[c]; one thread per element."""
    k = cuda.grid(1)
    N, C, L = x.shape
    if k < N * C * L:
        n, c, i = k // (C * L), (k // L) % C, k % L
        y[n, c, i] = (x[n, c, i] - center[c]) * scale[c] + shift[c]


@cuda.jit
def _batch_norm_dx_kernel(dy, x, mean, rstd, scale, mean_dy, mean_dy_xhat, dx):
    """dx = scale * (dy - mean(dy) - xhat * mean(dy * xhat)) per channel; one thread per element."""
    k = cuda.grid(1)
    N, C, L = x.shape
    if k < N * C * L:
        n, c, i = k // (C * L), (k // L) % C, k % L
        xhat = (x[n, c, i] - mean[c]) * rstd[c]
        dx[n, c, i] = scale[c] * (dy[n, c, i] - mean_dy[c] - xhat * mean_dy_xhat[c])


def _reduction_threads(M):
    """The smallest power of two >= M, between 32 (one warp) and MAX_REDUCTION_THREADS."""
    return max(32, min(MAX_REDUCTION_THREADS, 1 << (M - 1).bit_length()))


def _elementwise_blocks(size):
    return math.ceil(size / ELEMENTWISE_THREADS)


# The launchers skip a kernel whose grid would have 0 blocks (C == 0 for the per-channel
# reductions, an empty x for the elementwise maps): a real GPU refuses such a launch
# (CUDA_ERROR_INVALID_VALUE), while the simulator just runs nothing. With N*H*W == 0 and C > 0 the
# reductions still run and divide by M = 0, giving NaN statistics, as the mean of nothing is in NumPy.


def _planes(a):
    """(N, C, H, W) -> a contiguous (N, C, H * W) view (a copy only if `a` is not contiguous).

    The last size is spelled out: reshape cannot infer a -1 when the array is empty.
    """
    a = array_module(a).ascontiguousarray(a)
    return a.reshape(a.shape[0], a.shape[1], math.prod(a.shape[2:]))


def batch_norm_forward(x, weight, bias, eps):
    """Training mode. x (N, C, H, W); weight, bias (C,). Returns y, mean, var, rstd."""
    xp = array_module(x)
    x3 = _planes(x)
    N, C, L = x3.shape
    mean = xp.empty(C, dtype=xp.float64)
    var = xp.empty(C, dtype=xp.float64)
    if C:
        _channel_mean_var_kernel[C, _reduction_threads(N * L)](x3, mean, var)
    rstd = 1.0 / xp.sqrt(var + eps)
    dtype = x.dtype
    y = xp.empty(x3.shape, dtype=dtype)
    scale = (weight * rstd).astype(dtype)
    if y.size:
        _affine_per_channel_kernel[_elementwise_blocks(y.size), ELEMENTWISE_THREADS](
            x3, mean.astype(dtype), scale, bias.astype(dtype), y
        )
    return y.reshape(x.shape), mean.astype(dtype), var.astype(dtype), rstd.astype(dtype)


def batch_norm_backward(dy, x, weight, mean, rstd):
    """Training mode backward, through the batch statistics. Returns dx, dweight, dbias."""
    xp = array_module(x)
    x3, dy3 = _planes(x), _planes(dy)
    N, C, L = x3.shape
    M = N * L
    sum_dy = xp.empty(C, dtype=xp.float64)
    sum_dy_xhat = xp.empty(C, dtype=xp.float64)
    if C:
        _channel_backward_sums_kernel[C, _reduction_threads(M)](dy3, x3, mean, rstd, sum_dy, sum_dy_xhat)
    dtype = x.dtype
    dx = xp.empty(x3.shape, dtype=dtype)
    scale = (weight * rstd).astype(dtype)
    # sum(dxhat) = weight * sum(dy), so weight factors out of the bracket into `scale`.
    if dx.size:
        _batch_norm_dx_kernel[_elementwise_blocks(dx.size), ELEMENTWISE_THREADS](
            dy3, x3, mean, rstd, scale, (sum_dy / M).astype(dtype), (sum_dy_xhat / M).astype(dtype), dx
        )
    return dx.reshape(x.shape), sum_dy_xhat.astype(dtype), sum_dy.astype(dtype)


def batch_norm_forward_eval(x, weight, bias, running_mean, running_var, eps):
    """Eval mode: normalise with the running statistics. Returns y (N, C, H, W)."""
    xp = array_module(x)
    x3 = _planes(x)
    rstd = 1.0 / xp.sqrt(running_var.astype(xp.float64) + eps)
    dtype = x.dtype
    y = xp.empty(x3.shape, dtype=dtype)
    if y.size:
        _affine_per_channel_kernel[_elementwise_blocks(y.size), ELEMENTWISE_THREADS](
            x3, running_mean.astype(dtype), (weight * rstd).astype(dtype), bias.astype(dtype), y
        )
    return y.reshape(x.shape)


def batch_norm_backward_eval(dy, x, weight, running_mean, running_var, eps):
    """Eval mode backward: dx = dy * weight * rstd (the statistics are constants)."""
    xp = array_module(x)
    x3, dy3 = _planes(x), _planes(dy)
    N, C, L = x3.shape
    rstd = 1.0 / xp.sqrt(running_var.astype(xp.float64) + eps)
    sum_dy = xp.empty(C, dtype=xp.float64)
    sum_dy_xhat = xp.empty(C, dtype=xp.float64)
    if C:
        _channel_backward_sums_kernel[C, _reduction_threads(N * L)](
            dy3, x3, running_mean.astype(xp.float64), rstd, sum_dy, sum_dy_xhat
        )
    dtype = x.dtype
    dx = xp.empty(x3.shape, dtype=dtype)
    zeros = xp.zeros(C, dtype=dtype)
    # dx is the same per-channel affine map as the forward, with no centre and no shift.
    if dx.size:
        _affine_per_channel_kernel[_elementwise_blocks(dx.size), ELEMENTWISE_THREADS](
            dy3, zeros, (weight * rstd).astype(dtype), zeros, dx
        )
    return dx.reshape(x.shape), sum_dy_xhat.astype(dtype), sum_dy.astype(dtype)
