"""log_softmax, NLL and fused cross-entropy with Numba on the CPU (see __init__ for the math).

Memory layout: x is (N,K,P) with the P pixels contiguous, so one pixel's K scores are P apart.
Instead of walking one pixel's classes (a strided, cache-unfriendly loop), each thread takes a
chunk of CHUNK pixels of one image and sweeps the classes over the whole chunk, one contiguous
row x[n, k, start:stop] at a time: the inner loops run over 1-D contiguous slices, which LLVM
turns into SIMD instructions. Threads never share an output element.

The exponentials of the fused cross-entropy are left to NumPy: its np.exp is SIMD (8-16 values
per instruction), while Numba, without Intel's SVML library, calls the scalar expf once per value,
about 7x slower; on 8x21x480x480 logits that is most of the time.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

CHUNK = 1024


def _as_nkp(a):
    """(N,K,...) -> contiguous (N,K,P)."""
    return np.ascontiguousarray(a).reshape(a.shape[0], a.shape[1], -1)


def _as_np(a):
    """(N,...) -> contiguous (N,P)."""
    return np.ascontiguousarray(a).reshape(a.shape[0], -1)


@njit(cache=True, inline="always")
def _chunk_of(job, P):
    """Job number -> (image n, first pixel, one past the last pixel) of its chunk."""
    chunks = (P + CHUNK - 1) // CHUNK
    n = job // chunks
    start = (job % chunks) * CHUNK
    return n, start, min(start + CHUNK, P)


@njit(cache=True, inline="always")
def _max_over_classes(x, n, start, stop, m):
    """m[j] = max_k x[n, k, start + j]."""
    m[:] = x[n, 0, start:stop]
    for k in range(1, x.shape[1]):
        row = x[n, k, start:stop]
        for j in range(stop - start):
            m[j] = max(m[j], row[j])


@njit(cache=True, parallel=True)
def _log_softmax_forward(x, y):
    N, K, P = x.shape
    for job in prange(N * ((P + CHUNK - 1) // CHUNK)):
        n, start, stop = _chunk_of(job, P)
        m = np.empty(stop - start, dtype=x.dtype)
        _max_over_classes(x, n, start, stop, m)
        total = np.zeros(stop - start, dtype=x.dtype)
        for k in range(K):
            row = x[n, k, start:stop]
            for j in range(stop - start):
                total[j] += np.exp(row[j] - m[j])
        log_total = np.log(total)
        for k in range(K):
            row, out = x[n, k, start:stop], y[n, k, start:stop]
            for j in range(stop - start):
                out[j] = (row[j] - m[j]) - log_total[j]


@njit(cache=True, parallel=True)
def _log_softmax_backward(dy, y, dx):
    N, K, P = y.shape
    for job in prange(N * ((P + CHUNK - 1) // CHUNK)):
        n, start, stop = _chunk_of(job, P)
        total = dy[n, 0, start:stop].copy()
        for k in range(1, K):
            row = dy[n, k, start:stop]
            for j in range(stop - start):
                total[j] += row[j]
        for k in range(K):
            g, yk, out = dy[n, k, start:stop], y[n, k, start:stop], dx[n, k, start:stop]
            for j in range(stop - start):
                out[j] = g[j] - np.exp(yk[j]) * total[j]


@njit(cache=True, parallel=True)
def _nll_loss_forward(y, target, weight, ignore_index, loss, pixel_weight):
    N, P = target.shape
    for n in prange(N):
        for p in range(P):
            t = target[n, p]
            if t == ignore_index:
                loss[n, p] = 0
                pixel_weight[n, p] = 0
            else:
                loss[n, p] = -weight[t] * y[n, t, p]
                pixel_weight[n, p] = weight[t]


@njit(cache=True, parallel=True)
def _nll_loss_backward(dloss, target, weight, ignore_index, dy):
    N, P = target.shape
    for n in prange(N):  # dy arrives zeroed; only the target class of each kept pixel is set
        for p in range(P):
            t = target[n, p]
            if t != ignore_index:
                dy[n, t, p] = -weight[t] * dloss[n, p]


@njit(cache=True, parallel=True)
def _max_over_classes_all(x, m):
    N, K, P = x.shape
    for job in prange(N * ((P + CHUNK - 1) // CHUNK)):
        n, start, stop = _chunk_of(job, P)
        _max_over_classes(x, n, start, stop, m[n, start:stop])


@njit(cache=True, parallel=True)
def _normalise_and_loss(prob, x, m, target, weight, ignore_index, loss, pixel_weight):
    """prob holds exp(x - m); divide it by its sum over classes, and write each pixel's loss."""
    N, K, P = prob.shape
    for job in prange(N * ((P + CHUNK - 1) // CHUNK)):
        n, start, stop = _chunk_of(job, P)
        total = prob[n, 0, start:stop].copy()
        for k in range(1, K):
            row = prob[n, k, start:stop]
            for j in range(stop - start):
                total[j] += row[j]
        inverse = np.empty_like(total)
        for j in range(stop - start):
            inverse[j] = 1 / total[j]             # one division per pixel, not one per score
        for k in range(K):
            row = prob[n, k, start:stop]
            for j in range(stop - start):
                row[j] *= inverse[j]
        for j in range(stop - start):
            p = start + j
            t = target[n, p]
            if t == ignore_index:
                loss[n, p] = 0
                pixel_weight[n, p] = 0
            else:
                # -log softmax[t] = log(total) - (x[t] - m)
                loss[n, p] = weight[t] * (np.log(total[j]) - (x[n, t, p] - m[n, p]))
                pixel_weight[n, p] = weight[t]


@njit(cache=True, parallel=True)
def _cross_entropy_backward(dloss, prob, target, weight, ignore_index, dx):
    N, K, P = prob.shape
    for job in prange(N * ((P + CHUNK - 1) // CHUNK)):
        n, start, stop = _chunk_of(job, P)
        scale = np.zeros(stop - start, dtype=prob.dtype)      # dloss * w[t], 0 for ignored pixels
        for j in range(stop - start):
            t = target[n, start + j]
            if t != ignore_index:
                scale[j] = dloss[n, start + j] * weight[t]
        for k in range(K):
            row, out = prob[n, k, start:stop], dx[n, k, start:stop]
            for j in range(stop - start):
                out[j] = row[j] * scale[j]
        for j in range(stop - start):
            t = target[n, start + j]
            if t != ignore_index:
                dx[n, t, start + j] -= scale[j]


def log_softmax_forward(x):
    x3 = _as_nkp(x)
    y = np.empty_like(x3)
    _log_softmax_forward(x3, y)
    return y.reshape(x.shape)


def log_softmax_backward(dy, y):
    y3 = _as_nkp(y)
    dx = np.empty_like(y3)
    _log_softmax_backward(_as_nkp(dy), y3, dx)
    return dx.reshape(y.shape)


def nll_loss_forward(y, target, weight, ignore_index):
    t2 = _as_np(target)
    loss = np.empty(t2.shape, dtype=y.dtype)
    pixel_weight = np.empty(t2.shape, dtype=y.dtype)
    _nll_loss_forward(_as_nkp(y), t2, weight.astype(y.dtype), ignore_index, loss, pixel_weight)
    return loss.reshape(target.shape), pixel_weight.reshape(target.shape)


def nll_loss_backward(dloss, target, weight, ignore_index, num_classes):
    t2 = _as_np(target)
    dy = np.zeros((t2.shape[0], num_classes, t2.shape[1]), dtype=dloss.dtype)
    _nll_loss_backward(_as_np(dloss), t2, weight.astype(dloss.dtype), ignore_index, dy)
    return dy.reshape((target.shape[0], num_classes) + target.shape[1:])


def cross_entropy_forward(x, target, weight, ignore_index):
    x3, t2 = _as_nkp(x), _as_np(target)
    N, K, P = x3.shape
    m = np.empty((N, P), dtype=x.dtype)
    _max_over_classes_all(x3, m)
    prob = np.subtract(x3, m[:, None, :])           # (N,K,P): x - max, then exp in place, by NumPy (SIMD)
    np.exp(prob, out=prob)
    loss = np.empty((N, P), dtype=x.dtype)
    pixel_weight = np.empty((N, P), dtype=x.dtype)
    _normalise_and_loss(prob, x3, m, t2, weight.astype(x.dtype), ignore_index, loss, pixel_weight)
    return loss.reshape(target.shape), pixel_weight.reshape(target.shape), prob.reshape(x.shape)


def cross_entropy_backward(dloss, prob, target, weight, ignore_index):
    prob3 = _as_nkp(prob)
    dx = np.empty_like(prob3)
    _cross_entropy_backward(_as_np(dloss), prob3, _as_np(target), weight.astype(prob.dtype), ignore_index, dx)
    return dx.reshape(prob.shape)
