"""batch_norm: normalise each channel, with the batch's statistics (training) or running ones (eval).

    y = (x - mean) / sqrt(var + eps) * weight + bias          per channel c, over (N, H, W)

Training: mean and var are the batch's (biased var), gradients flow through them, and the running
statistics are updated in place, as torch.nn.functional.batch_norm does:

    running_mean = (1 - momentum) * running_mean + momentum * mean
    running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)    (unbiased)

Eval: mean and var are running_mean and running_var, constants for the gradient.
The arithmetic is in kernels/batch_norm (reference, cpu and cuda variants).
"""

from __future__ import annotations

import numpy as np

from minipsp import kernels
from minipsp.autograd.function import Function
from minipsp.backend import device_of, get_array_module
from minipsp.nn.functional.dtypes import FLOAT_DTYPES, check_float

__all__ = ["batch_norm"]


def _as_4d(x):
    """(N, C) -> (N, C, 1, 1) and (N, C, L) -> (N, C, L, 1): the kernels take (N, C, H, W)."""
    return x.reshape(x.shape + (1,) * (4 - x.ndim))


def _affine_params(x, weight, bias):
    """weight and bias as arrays of x's dtype; ones and zeros stand in for a missing one."""
    xp = get_array_module(x)
    C = x.shape[1]
    weight = xp.ones(C, dtype=x.dtype) if weight is None else weight.astype(x.dtype, copy=False)
    bias = xp.zeros(C, dtype=x.dtype) if bias is None else bias.astype(x.dtype, copy=False)
    return weight, bias


class BatchNormTraining(Function):
    """Normalise with the batch's mean and variance; backward goes through both statistics."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, momentum, eps):
        K = kernels.variant("batch_norm", x)
        x4 = _as_4d(x)
        w, b = _affine_params(x, weight, bias)
        y, mean, var, rstd = K.batch_norm_forward(x4, w, b, eps)
        if running_mean is not None:
            running_mean[...] = (1 - momentum) * running_mean + momentum * mean
        if running_var is not None:
            M = x4.shape[0] * x4.shape[2] * x4.shape[3]
            running_var[...] = (1 - momentum) * running_var + momentum * var * (M / (M - 1))
        # xhat is recomputed from x, mean and rstd in backward rather than saved (one array less).
        ctx.save_for_backward(x4, w, mean, rstd)
        ctx.shape = x.shape
        ctx.has_weight, ctx.has_bias = weight is not None, bias is not None
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, dy):
        x4, w, mean, rstd = ctx.saved
        K = kernels.variant("batch_norm", x4)
        dx, dweight, dbias = K.batch_norm_backward(dy.reshape(x4.shape), x4, w, mean, rstd)
        return (dx.reshape(ctx.shape), dweight if ctx.has_weight else None, dbias if ctx.has_bias else None,
                None, None, None, None)


class BatchNormEval(Function):
    """Normalise with fixed running statistics: an affine map per channel."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, eps):
        K = kernels.variant("batch_norm", x)
        x4 = _as_4d(x)
        w, b = _affine_params(x, weight, bias)
        y = K.batch_norm_forward_eval(x4, w, b, running_mean, running_var, eps)
        # Copies: the running statistics may be updated in place before backward runs.
        ctx.save_for_backward(x4, w, running_mean.copy(), running_var.copy())
        ctx.shape, ctx.eps = x.shape, eps
        ctx.has_weight, ctx.has_bias = weight is not None, bias is not None
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, dy):
        x4, w, running_mean, running_var = ctx.saved
        K = kernels.variant("batch_norm", x4)
        dx, dweight, dbias = K.batch_norm_backward_eval(dy.reshape(x4.shape), x4, w, running_mean, running_var,
                                                        ctx.eps)
        return (dx.reshape(ctx.shape), dweight if ctx.has_weight else None, dbias if ctx.has_bias else None,
                None, None, None)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5):
    """Batch normalisation, as torch.nn.functional.batch_norm.

    input: Tensor (N, C), (N, C, L) or (N, C, H, W). running_mean, running_var: (C,) Tensors or
    arrays (NumPy/CuPy) on input's device, or None; in training they are updated in place (with the
    unbiased batch variance) and may be None (then nothing is updated); in eval they are required.
    weight, bias: (C,) Tensors or None (then 1 and 0). Returns a Tensor of input's shape.
    """
    from minipsp.tensor import Tensor

    if not isinstance(input, Tensor):
        raise TypeError(f"batch_norm: input must be a Tensor; got {type(input).__name__}")
    if input.ndim not in (2, 3, 4):
        raise ValueError(f"batch_norm: input must be 2-D (N, C), 3-D (N, C, L) or 4-D (N, C, H, W); "
                         f"got shape {tuple(input.shape)}")
    check_float("batch_norm", "input", input.dtype)
    C = input.shape[1]
    device = device_of(input.data)
    running_mean = _stat_array("running_mean", running_mean, C, device)
    running_var = _stat_array("running_var", running_var, C, device)
    for name, param in (("weight", weight), ("bias", bias)):
        if param is not None:
            if not isinstance(param, Tensor):
                raise TypeError(f"batch_norm: {name} must be a Tensor or None; got {type(param).__name__}")
            if tuple(param.shape) != (C,):
                raise ValueError(f"batch_norm: {name} must have shape ({C},) for an input with {C} channels; "
                                 f"got {tuple(param.shape)}")
    if not eps > 0:     # also NaN, which would make every output NaN
        raise ValueError(f"batch_norm: eps must be positive; got {eps}")

    if training:
        values_per_channel = input.data.size // C if C else 0
        if values_per_channel <= 1:
            raise ValueError(f"batch_norm: Expected more than 1 value per channel when training, "
                             f"got input size {tuple(input.shape)}")
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum <= 1:
            raise ValueError(f"batch_norm: momentum must be a number in [0, 1]; got {momentum!r} "
                             "(a cumulative average, momentum=None in torch's modules, is the module's job)")
        return BatchNormTraining.apply(input, weight, bias, running_mean, running_var, float(momentum),
                                       float(eps))
    if running_mean is None or running_var is None:
        raise ValueError("batch_norm: running_mean and running_var must be given in evaluation mode "
                         "(training=False); pass training=True to normalise with the batch's statistics")
    if input.numel() == 0:
        return _eval_of_empty(input, weight, bias, running_mean, running_var, float(eps))
    return BatchNormEval.apply(input, weight, bias, running_mean, running_var, float(eps))


def _eval_of_empty(input, weight, bias, running_mean, running_var, eps):
    """Eval on an input with no values (N = 0, C = 0 or an empty image): the same affine map in plain
    tensor arithmetic, so the result is empty, of input's shape, and weight and bias get zero gradients,
    as in torch. (The kernels reshape to (N, C, -1), which an empty array cannot do.)"""
    xp = get_array_module(input.data)
    per_channel = (1, input.shape[1]) + (1,) * (input.ndim - 2)   # broadcasts over (N, C, ...)
    mean = running_mean.astype(input.dtype).reshape(per_channel)
    rstd = (1 / xp.sqrt(running_var + eps)).astype(input.dtype).reshape(per_channel)
    y = (input - mean) * rstd
    if weight is not None:
        y = y * weight.reshape(per_channel)
    if bias is not None:
        y = y + bias.reshape(per_channel)
    return y


def _stat_array(name, stat, C, device):
    """The array behind a running statistic (a Tensor's .data, so updates land in the Tensor), checked."""
    from minipsp.tensor import Tensor

    if stat is None:
        return None
    array = stat.data if isinstance(stat, Tensor) else stat
    if not (isinstance(array, np.ndarray) or type(array).__module__.startswith("cupy")):
        raise TypeError(f"batch_norm: {name} must be a Tensor, a NumPy/CuPy array or None; "
                        f"got {type(stat).__name__}")
    if tuple(array.shape) != (C,):
        raise ValueError(f"batch_norm: {name} must have shape ({C},) for an input with {C} channels; "
                         f"got {tuple(array.shape)}")
    if device_of(array) != device:
        raise RuntimeError(f"batch_norm: {name} is on {device_of(array)} but input is on {device}; "
                           "move them to the same device")
    if array.dtype not in FLOAT_DTYPES:
        raise TypeError(f"batch_norm: {name} must be float32 or float64 (it is updated in place); "
                        f"got dtype {array.dtype}")
    return array
