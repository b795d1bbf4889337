"""log_softmax, NLL and fused cross-entropy with Numba CUDA (see __init__ for the math).

One thread per pixel (n, p), looping over the K classes of that pixel. Pixels are contiguous in
memory (x is (N,K,P)), so at each step of the loop the threads of a warp read neighbouring
addresses: the loads coalesce. The per-pixel losses and weights go to (N,P) arrays, which the
caller reduces with xp.sum (a tuned CuPy reduction), so no kernel needs atomics.
ignore_index goes to the kernels as a Python int (int64 to Numba) whatever integer type the caller
used, so each kernel compiles once per dtype.
Under Numba's simulator (NUMBA_ENABLE_CUDASIM=1) the inputs are NumPy arrays and so are the outputs.
"""

from __future__ import annotations

import math

from numba import cuda

from .. import array_module

THREADS = 256


def _blocks(count):
    return max(1, math.ceil(count / THREADS))


@cuda.jit(device=True)
def _max_and_sumexp(x, n, p):
    """(m, s): the max over classes of x[n,:,p] and sum_k exp(x[n,k,p] - m)."""
    K = x.shape[1]
    m = x[n, 0, p]
    for k in range(1, K):
        m = max(m, x[n, k, p])
    s = math.exp(x[n, 0, p] - m)  # started from the first term, so s has x's dtype (no float64 literal)
    for k in range(1, K):
        s += math.exp(x[n, k, p] - m)
    return m, s


@cuda.jit
def _log_softmax_forward_kernel(x, y):
    i = cuda.grid(1)
    N, K, P = x.shape
    if i >= N * P:
        return
    n, p = i // P, i % P
    m, s = _max_and_sumexp(x, n, p)
    log_s = math.log(s)
    for k in range(K):
        y[n, k, p] = (x[n, k, p] - m) - log_s


@cuda.jit
def _log_softmax_backward_kernel(dy, y, dx):
    i = cuda.grid(1)
    N, K, P = y.shape
    if i >= N * P:
        return
    n, p = i // P, i % P
    total = dy[n, 0, p]
    for k in range(1, K):
        total += dy[n, k, p]
    for k in range(K):
        dx[n, k, p] = dy[n, k, p] - math.exp(y[n, k, p]) * total


@cuda.jit
def _nll_loss_forward_kernel(y, target, weight, ignore_index, loss, pixel_weight):
    i = cuda.grid(1)
    N, P = target.shape
    if i >= N * P:
        return
    n, p = i // P, i % P
    t = target[n, p]
    if t == ignore_index:
        loss[n, p] = 0
        pixel_weight[n, p] = 0
    else:
        loss[n, p] = -weight[t] * y[n, t, p]
        pixel_weight[n, p] = weight[t]


@cuda.jit
def _nll_loss_backward_kernel(dloss, target, weight, ignore_index, dy):
    i = cuda.grid(1)
    N, P = target.shape
    if i >= N * P:
        return
    n, p = i // P, i % P
    t = target[n, p]
    if t != ignore_index:  # dy arrives zeroed; only the target class of a kept pixel is set
        dy[n, t, p] = -weight[t] * dloss[n, p]


@cuda.jit
def _cross_entropy_forward_kernel(x, target, weight, ignore_index, loss, pixel_weight, prob):
    i = cuda.grid(1)
    N, K, P = x.shape
    if i >= N * P:
        return
    n, p = i // P, i % P
    m, s = _max_and_sumexp(x, n, p)
    for k in range(K):
        prob[n, k, p] = math.exp(x[n, k, p] - m) / s
    t = target[n, p]
    if t == ignore_index:
        loss[n, p] = 0
        pixel_weight[n, p] = 0
    else:
        loss[n, p] = weight[t] * (math.log(s) - (x[n, t, p] - m))
        pixel_weight[n, p] = weight[t]


@cuda.jit
def _cross_entropy_backward_kernel(dloss, prob, target, weight, ignore_index, dx):
    i = cuda.grid(1)
    N, K, P = prob.shape
    if i >= N * P:
        return
    n, p = i // P, i % P
    t = target[n, p]
    if t == ignore_index:
        for k in range(K):
            dx[n, k, p] = 0
        return
    scale = dloss[n, p] * weight[t]
    for k in range(K):
        dx[n, k, p] = prob[n, k, p] * scale
    dx[n, t, p] -= scale


# The sizes are spelled out, not -1: reshape cannot infer a -1 when the array is empty.
def _as_nkp(xp, a):
    """(N, K, ...) -> contiguous (N, K, P)."""
    return xp.ascontiguousarray(a).reshape(a.shape[0], a.shape[1], math.prod(a.shape[2:]))


def _as_np(xp, a):
    """(N, ...) -> contiguous (N, P)."""
    return xp.ascontiguousarray(a).reshape(a.shape[0], math.prod(a.shape[1:]))


def log_softmax_forward(x):
    xp = array_module(x)
    x3 = _as_nkp(xp, x)
    y = xp.empty_like(x3)
    _log_softmax_forward_kernel[_blocks(x3.shape[0] * x3.shape[2]), THREADS](x3, y)
    return y.reshape(x.shape)


def log_softmax_backward(dy, y):
    xp = array_module(y)
    y3 = _as_nkp(xp, y)
    dx = xp.empty_like(y3)
    _log_softmax_backward_kernel[_blocks(y3.shape[0] * y3.shape[2]), THREADS](_as_nkp(xp, dy), y3, dx)
    return dx.reshape(y.shape)


def nll_loss_forward(y, target, weight, ignore_index):
    xp = array_module(y)
    t2 = _as_np(xp, target)
    loss = xp.empty(t2.shape, dtype=y.dtype)
    pixel_weight = xp.empty(t2.shape, dtype=y.dtype)
    _nll_loss_forward_kernel[_blocks(t2.size), THREADS](
        _as_nkp(xp, y), t2, xp.asarray(weight, dtype=y.dtype), int(ignore_index), loss, pixel_weight)
    return loss.reshape(target.shape), pixel_weight.reshape(target.shape)


def nll_loss_backward(dloss, target, weight, ignore_index, num_classes):
    xp = array_module(dloss)
    t2 = _as_np(xp, target)
    dy = xp.zeros((t2.shape[0], num_classes, t2.shape[1]), dtype=dloss.dtype)
    _nll_loss_backward_kernel[_blocks(t2.size), THREADS](
        _as_np(xp, dloss), t2, xp.asarray(weight, dtype=dloss.dtype), int(ignore_index), dy)
    return dy.reshape((target.shape[0], num_classes) + target.shape[1:])


def cross_entropy_forward(x, target, weight, ignore_index):
    xp = array_module(x)
    x3, t2 = _as_nkp(xp, x), _as_np(xp, target)
    loss = xp.empty(t2.shape, dtype=x.dtype)
    pixel_weight = xp.empty(t2.shape, dtype=x.dtype)
    prob = xp.empty_like(x3)
    _cross_entropy_forward_kernel[_blocks(t2.size), THREADS](
        x3, t2, xp.asarray(weight, dtype=x.dtype), int(ignore_index), loss, pixel_weight, prob)
    return loss.reshape(target.shape), pixel_weight.reshape(target.shape), prob.reshape(x.shape)


def cross_entropy_backward(dloss, prob, target, weight, ignore_index):
    xp = array_module(prob)
    prob3 = _as_nkp(xp, prob)
    dx = xp.empty_like(prob3)
    _cross_entropy_backward_kernel[_blocks(prob3.shape[0] * prob3.shape[2]), THREADS](
        _as_np(xp, dloss), prob3, _as_np(xp, target), xp.asarray(weight, dtype=prob.dtype), int(ignore_index),
        dx)
    return dx.reshape(prob.shape)
