"""log_softmax, NLL and fused cross-entropy in plain NumPy: the readable definition (see __init__)."""

from __future__ import annotations

import numpy as np


def log_softmax_forward(x):
    """y = x - logsumexp(x) over axis 1 (the classes)."""
    shifted = x - x.max(axis=1, keepdims=True)                     # (N,K,...), max 0
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def log_softmax_backward(dy, y):
    """dx = dy - softmax * sum_k dy."""
    return dy - np.exp(y) * dy.sum(axis=1, keepdims=True)


def _picked(a, target, ignore_index):
    """a[n, t[n,p], p] for each pixel (N,...), and the mask of pixels that are not ignored."""
    keep = target != ignore_index
    safe = np.where(keep, target, 0)                               # any valid class for ignored pixels
    return np.take_along_axis(a, safe[:, None], axis=1)[:, 0], keep, safe


def nll_loss_forward(y, target, weight, ignore_index):
    """Per pixel: loss = -w[t] * y[t] and weight = w[t]; both 0 where t == ignore_index."""
    y_t, keep, safe = _picked(y, target, ignore_index)
    pixel_weight = np.where(keep, weight[safe], 0).astype(y.dtype)
    return -pixel_weight * y_t, pixel_weight


def nll_loss_backward(dloss, target, weight, ignore_index, num_classes):
    """dy (N,K,...): -w[t] * dloss at class t of each kept pixel, 0 elsewhere."""
    keep = target != ignore_index
    safe = np.where(keep, target, 0)
    dy = np.zeros((target.shape[0], num_classes) + target.shape[1:], dtype=dloss.dtype)
    value = np.where(keep, -weight[safe] * dloss, 0).astype(dloss.dtype)
    np.put_along_axis(dy, safe[:, None], value[:, None], axis=1)
    return dy


def cross_entropy_forward(x, target, weight, ignore_index):
    """Per pixel: loss = -w[t] * log softmax[t] and weight = w[t] (0 where ignored); and softmax (N,K,...)."""
    shifted = x - x.max(axis=1, keepdims=True)                     # (N,K,...), max 0
    e = np.exp(shifted)
    total = e.sum(axis=1, keepdims=True)                           # (N,1,...)
    shifted_t, keep, safe = _picked(shifted, target, ignore_index)
    pixel_weight = np.where(keep, weight[safe], 0).astype(x.dtype)
    return pixel_weight * (np.log(total[:, 0]) - shifted_t), pixel_weight, e / total


def cross_entropy_backward(dloss, prob, target, weight, ignore_index):
    """dx = dloss * w[t] * (softmax - onehot(t)), 0 for ignored pixels."""
    keep = target != ignore_index
    safe = np.where(keep, target, 0)
    scale = np.where(keep, dloss * weight[safe], 0).astype(prob.dtype)[:, None]   # (N,1,...)
    onehot = np.arange(prob.shape[1]).reshape((1, -1) + (1,) * (prob.ndim - 2)) == safe[:, None]
    return (prob - onehot) * scale
