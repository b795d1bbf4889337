"""Softmax and the segmentation loss: log_softmax, softmax, nll_loss, cross_entropy (as in torch).

PSPNet trains with cross_entropy(logits, labels, ignore_index=255): logits (N,K,H,W) upsampled
to the label size, labels (N,H,W) with 255 on pixels that belong to no class (object borders,
padding). The arithmetic is in kernels/cross_entropy (its docstring has the formulas).
"""

from __future__ import annotations

import numpy as np

from minipsp import kernels
from minipsp.autograd.function import Function
from minipsp.backend import device_of, get_array_module, is_cupy_array
from minipsp.nn.functional.dtypes import check_float
from minipsp.tensor import Tensor

__all__ = ["log_softmax", "softmax", "nll_loss", "cross_entropy"]

REDUCTIONS = ("mean", "sum", "none")


class LogSoftmax(Function):
    """y = x - logsumexp(x) over axis 1;  dx = dy - softmax(x) * sum_k dy."""

    @staticmethod
    def forward(ctx, x):
        y = kernels.variant("cross_entropy", x).log_softmax_forward(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved
        return (kernels.variant("cross_entropy", y).log_softmax_backward(dy, y),)


class Softmax(Function):
    """y = exp(log_softmax(x)) over axis 1;  dx = y * (dy - sum_k dy * y)."""

    @staticmethod
    def forward(ctx, x):
        y = get_array_module(x).exp(kernels.variant("cross_entropy", x).log_softmax_forward(x))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved
        return (y * (dy - (dy * y).sum(axis=1, keepdims=True)),)


def _reduce(loss, pixel_weight, reduction):
    """The loss output for `reduction`, and the factor that turns its gradient into dloss per pixel."""
    xp = get_array_module(loss)
    if reduction == "none":
        return loss, None
    if reduction == "sum":
        return loss.sum(), xp.ones((), dtype=loss.dtype)
    scale = _mean_scale(pixel_weight, loss.dtype)
    return loss.sum() * scale, scale


def _mean_scale(pixel_weight, dtype):
    """1 / (the kept pixels' weight total), as torch divides by any non-zero total (negative weights
    included); 0, not torch's NaN or inf, when the total is 0 (every pixel ignored, or weights that cancel).
    Kept as a 0-d array, so that a GPU run does not wait for the sum."""
    xp = get_array_module(pixel_weight)
    total = pixel_weight.sum()
    nonzero = total != 0
    return xp.where(nonzero, 1 / xp.where(nonzero, total, 1), 0).astype(dtype)


def _dloss(dy, scale, shape):
    """dL/dloss per pixel (N,...): dy itself for 'none', else the scalar dy * scale everywhere."""
    if scale is None:
        return dy
    xp = get_array_module(dy)
    return xp.ascontiguousarray(xp.broadcast_to(dy * scale, shape))


class NLLLoss(Function):
    """loss = -w[t] * y[t] per pixel (0 where ignored), reduced;  dy[t] = -w[t] * dloss."""

    @staticmethod
    def forward(ctx, y, target, weight, ignore_index, reduction):
        loss, pixel_weight = kernels.variant("cross_entropy", y).nll_loss_forward(y, target, weight, ignore_index)
        out, ctx.scale = _reduce(loss, pixel_weight, reduction)
        ctx.save_for_backward(target, weight)
        ctx.ignore_index, ctx.num_classes = ignore_index, y.shape[1]
        return out

    @staticmethod
    def backward(ctx, dy):
        target, weight = ctx.saved
        dloss = _dloss(dy, ctx.scale, target.shape)
        k = kernels.variant("cross_entropy", dloss)
        return k.nll_loss_backward(dloss, target, weight, ctx.ignore_index, ctx.num_classes), None, None, None, None


class CrossEntropy(Function):
    """loss = w[t] * (logsumexp(x) - x[t]) per pixel, reduced;  dx = w[t] * dloss * (softmax - onehot(t))."""

    @staticmethod
    def forward(ctx, x, target, weight, ignore_index, reduction):
        k = kernels.variant("cross_entropy", x)
        loss, pixel_weight, prob = k.cross_entropy_forward(x, target, weight, ignore_index)
        out, ctx.scale = _reduce(loss, pixel_weight, reduction)
        ctx.save_for_backward(prob, target, weight)
        ctx.ignore_index = ignore_index
        return out

    @staticmethod
    def backward(ctx, dy):
        prob, target, weight = ctx.saved
        dloss = _dloss(dy, ctx.scale, target.shape)
        dx = kernels.variant("cross_entropy", prob).cross_entropy_backward(dloss, prob, target, weight,
                                                                           ctx.ignore_index)
        return dx, None, None, None, None


def log_softmax(input, dim=1):
    """log(softmax(input)) along `dim` (default 1, the classes of (N,K,...)), computed stably:
    x - max - log(sum(exp(x - max)))."""
    return _along_dim(LogSoftmax, "log_softmax", input, dim)


def softmax(input, dim=1):
    """exp(x) / sum(exp(x)) along `dim` (default 1, the classes of (N,K,...))."""
    return _along_dim(Softmax, "softmax", input, dim)


def nll_loss(input, target, weight=None, ignore_index=255, reduction="mean"):
    """Negative log-likelihood of log-probabilities `input` (N,K,H,W) or (N,K) at labels `target`.

    target: (N,H,W) or (N,) integer labels in [0, K), or ignore_index (those pixels contribute
        nothing). A Tensor or an integer NumPy/CuPy array on the input's device.
    weight: optional per-class weights (K,); a pixel of class t counts w[t] times.
    reduction: 'mean' (sum of w[t] * loss over kept pixels / sum of their w[t]), 'sum' or 'none'
        (the per-pixel losses, shape of target, 0 at ignored pixels).
    Differences from torch: ignore_index defaults to 255 (PSPNet's label for 'no class'; torch's
    default is -100), and a 'mean' whose weight total is 0 (every pixel ignored, an empty batch, or
    weights that cancel) is 0 with a zero gradient (torch gives NaN or inf).
    """
    target, weight_array = _check_loss_inputs("nll_loss", input, target, weight, ignore_index, reduction)
    if input.numel() == 0:
        return _empty_loss(input, reduction)
    return NLLLoss.apply(input, target, weight_array, int(ignore_index), reduction)


def cross_entropy(input, target, weight=None, ignore_index=255, reduction="mean", label_smoothing=0.0):
    """Softmax cross-entropy of logits `input` (N,K,H,W) or (N,K) against labels `target`.

    The same as nll_loss(log_softmax(input, 1), target, ...), fused: one pass over the logits, and
    the backward is w[t] * (softmax - onehot(t)) scaled by the reduction.
    target: (N,H,W) or (N,) integer labels in [0, K), or ignore_index (those pixels contribute
        nothing). A Tensor or an integer NumPy/CuPy array on the input's device.
    weight: optional per-class weights (K,); 'mean' then divides by the sum of the kept pixels'
        weights, as torch does.
    reduction: 'mean', 'sum' or 'none' (the per-pixel losses, shape of target, 0 where ignored).
    label_smoothing: eps in [0, 1]. The target becomes (1 - eps) * onehot(t) + eps / K, as in torch:
        loss = (1 - eps) * nll + (eps / K) * smooth,  smooth = -sum_k w[k] * log p[k]  per kept pixel,
        each reduced as nll is ('mean' divides both by the sum of the kept pixels' w[t], as torch does).
    Differences from torch: ignore_index defaults to 255 (PSPNet's label for 'no class'; torch's
    default is -100), and a 'mean' whose weight total is 0 (every pixel ignored, an empty batch, or
    weights that cancel) is 0 with a zero gradient (torch gives NaN or inf).
    """
    target, weight_array = _check_loss_inputs("cross_entropy", input, target, weight, ignore_index, reduction)
    eps = _check_label_smoothing(label_smoothing)
    if input.numel() == 0:
        return _empty_loss(input, reduction)
    if eps == 0:
        return CrossEntropy.apply(input, target, weight_array, int(ignore_index), reduction)
    # Label smoothing is composed from log_softmax, nll_loss and tensor arithmetic (autograd gives the
    # gradient), so the fused kernel stays the plain cross-entropy that PSPNet trains with.
    log_prob = log_softmax(input, 1)
    nll = NLLLoss.apply(log_prob, target, weight_array, int(ignore_index), reduction)
    smooth = _smoothing_loss(log_prob, target, weight_array, int(ignore_index), reduction)
    return nll * (1 - eps) + smooth * (eps / input.shape[1])


def _smoothing_loss(log_prob, target, weight, ignore_index, reduction):
    """smooth = -sum_k w[k] * log p[k] per pixel (0 where ignored), reduced as nll_loss reduces its loss."""
    K = log_prob.shape[1]
    kept = target != ignore_index                                                    # (N, ...) bool
    class_weight = weight.reshape((1, K) + (1,) * (log_prob.ndim - 2))               # broadcasts over (N, K, ...)
    per_pixel = -(log_prob * class_weight).sum(dim=1) * kept.astype(log_prob.dtype)  # (N, ...)
    if reduction == "none":
        return per_pixel
    if reduction == "sum":
        return per_pixel.sum()
    pixel_weight = weight[target * kept] * kept  # w[t] at kept pixels (a label in range at ignored ones)
    return per_pixel.sum() * _mean_scale(pixel_weight, log_prob.dtype)


def _empty_loss(input, reduction):
    """No logits at all (N = 0, K = 0 or an empty image): nothing to score, so a zero loss per pixel of
    target's shape ('none'), and 0 for 'sum' and 'mean' (torch: 0 and NaN), with a zero gradient."""
    per_pixel = input.sum(dim=1) * 0.0   # (N, ...), connected to input so that backward runs
    return per_pixel if reduction == "none" else per_pixel.sum()


def _check_label_smoothing(label_smoothing):
    if (isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float, np.floating))
            or not 0 <= label_smoothing <= 1):
        raise ValueError(f"cross_entropy: label_smoothing must be a number between 0.0 and 1.0; "
                         f"got {label_smoothing!r}")
    return float(label_smoothing)


# -- checks and helpers ----------------------------------------------------------------------
def _along_dim(function, name, input, dim):
    """Apply a Function that works on axis 1 along any `dim`, by moving `dim` to axis 1 and back."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}: input must be a Tensor; got {type(input).__name__}")
    check_float(name, "input", input.dtype)
    if input.ndim == 0 or not -input.ndim <= dim < input.ndim:
        raise ValueError(f"{name}: dim {dim} is out of range for an input of shape {input.shape}")
    dim = dim % input.ndim
    if input.ndim == 1:
        return function.apply(input.unsqueeze(0)).squeeze(0)
    if dim == 1:
        return function.apply(input)
    rest = [d for d in range(input.ndim) if d != dim]
    order = rest[:1] + [dim] + rest[1:]  # dim moved to axis 1
    back = [order.index(d) for d in range(input.ndim)]
    return function.apply(input.permute(order)).permute(back)


def _check_loss_inputs(name, input, target, weight, ignore_index, reduction):
    """Validate the arguments of nll_loss / cross_entropy; return (target array int64, weight array (K,))."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}: input must be a Tensor; got {type(input).__name__}")
    if input.ndim not in (2, 4):
        raise ValueError(f"{name}: input must be 2-D (N, K) or 4-D (N, K, H, W); got shape {input.shape}")
    check_float(name, "input", input.dtype)
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {REDUCTIONS}; got {reduction!r}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"{name}: ignore_index must be an int; got {ignore_index!r}")
    N, K = input.shape[:2]

    t = target.data if isinstance(target, Tensor) else target
    if not (isinstance(t, np.ndarray) or is_cupy_array(t)):
        raise TypeError(f"{name}: target must be a Tensor or an integer array; got {type(target).__name__}")
    if t.dtype.kind not in "iu":
        raise TypeError(f"{name}: target must hold integer class labels; got dtype {t.dtype}")
    expected = (N,) + input.shape[2:]
    if t.shape != expected:
        if t.ndim >= 1 and t.shape[0] != N:
            raise ValueError(f"{name}: batch sizes differ: input has {N} (shape {input.shape}) but target has "
                             f"{t.shape[0]} (shape {t.shape})")
        raise ValueError(f"{name}: target shape {t.shape} does not match input shape {input.shape}; "
                         f"expected {expected}")
    if device_of(t) != input.device:
        raise RuntimeError(f"{name}: input is on {input.device} but target is on {device_of(t)}; "
                           "move them to the same device")
    xp = get_array_module(t)
    if t.size:
        bad = (t != ignore_index) & ((t < 0) | (t >= K))
        if bool(bad.any()):
            value = int(t[bad][0])
            raise ValueError(f"{name}: target holds label {value}, outside [0, {K}) for K={K} classes "
                             f"(and not ignore_index={ignore_index})")
    t = xp.ascontiguousarray(t, dtype=np.int64)

    if weight is None:
        w = xp.ones(K, dtype=input.dtype)
    else:
        w = weight.data if isinstance(weight, Tensor) else weight
        if isinstance(w, (list, tuple)):
            w = xp.asarray(w)
        if not (isinstance(w, np.ndarray) or is_cupy_array(w)):
            raise TypeError(f"{name}: weight must be a Tensor or an array of shape ({K},); got {type(weight).__name__}")
        if device_of(w) != input.device:
            raise RuntimeError(f"{name}: input is on {input.device} but weight is on {device_of(w)}; "
                               "move them to the same device")
        if w.shape != (K,):
            raise ValueError(f"{name}: weight must have shape ({K},), one per class; got {w.shape}")
        w = xp.ascontiguousarray(w, dtype=input.dtype)
    return t, w
