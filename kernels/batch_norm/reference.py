"""Batch norm in plain NumPy (or CuPy): the readable definition. See __init__.py for the math."""

from __future__ import annotations

from .. import array_module

AXES = (0, 2, 3)  # the reduction axes: everything but the channel


def _per_channel(v):
    """(C,) -> (1, C, 1, 1), so that it broadcasts against (N, C, H, W)."""
    return v.reshape(1, -1, 1, 1)


def batch_norm_forward(x, weight, bias, eps):
    """Training mode: normalise with the batch's own mean and biased variance per channel.

    x (N, C, H, W); weight, bias (C,). Returns y (N, C, H, W) and mean, var, rstd (C,).
    """
    xp = array_module(x)
    x64 = x.astype(xp.float64)  # accumulate in float64 whatever the input dtype
    mean = x64.mean(axis=AXES)                                       # C
    var = ((x64 - _per_channel(mean)) ** 2).mean(axis=AXES)          # C
    rstd = 1.0 / xp.sqrt(var + eps)                                  # C
    xhat = (x64 - _per_channel(mean)) * _per_channel(rstd)           # N,C,H,W
    y = _per_channel(weight) * xhat + _per_channel(bias)
    dtype = x.dtype
    return y.astype(dtype), mean.astype(dtype), var.astype(dtype), rstd.astype(dtype)


def batch_norm_backward(dy, x, weight, mean, rstd):
    """Training mode backward, through the batch statistics. Returns dx, dweight, dbias."""
    xp = array_module(x)
    M = x.shape[0] * x.shape[2] * x.shape[3]
    xhat = (x.astype(xp.float64) - _per_channel(mean)) * _per_channel(rstd)  # recomputed, not saved
    dy64 = dy.astype(xp.float64)
    dbias = dy64.sum(axis=AXES)                                      # C
    dweight = (dy64 * xhat).sum(axis=AXES)                           # C
    dxhat = dy64 * _per_channel(weight)
    sum_dxhat = dxhat.sum(axis=AXES, keepdims=True)                  # 1,C,1,1
    sum_dxhat_xhat = (dxhat * xhat).sum(axis=AXES, keepdims=True)    # 1,C,1,1
    dx = _per_channel(rstd) / M * (M * dxhat - sum_dxhat - xhat * sum_dxhat_xhat)
    dtype = x.dtype
    return dx.astype(dtype), dweight.astype(dtype), dbias.astype(dtype)


def batch_norm_forward_eval(x, weight, bias, running_mean, running_var, eps):
    """Eval mode: normalise with the running statistics. Returns y (N, C, H, W)."""
    xp = array_module(x)
    rstd = 1.0 / xp.sqrt(running_var.astype(xp.float64) + eps)
    xhat = (x - _per_channel(running_mean)) * _per_channel(rstd)
    y = _per_channel(weight) * xhat + _per_channel(bias)
    return y.astype(x.dtype)


def batch_norm_backward_eval(dy, x, weight, running_mean, running_var, eps):
    """Eval mode backward: the statistics are constants, so dx = dy * weight * rstd."""
    xp = array_module(x)
    rstd = 1.0 / xp.sqrt(running_var.astype(xp.float64) + eps)
    xhat = (x - _per_channel(running_mean)) * _per_channel(rstd)
    dy64 = dy.astype(xp.float64)
    dx = dy64 * _per_channel(weight * rstd)
    dweight = (dy64 * xhat).sum(axis=AXES)
    dbias = dy64.sum(axis=AXES)
    dtype = x.dtype
    return dx.astype(dtype), dweight.astype(dtype), dbias.astype(dtype)
