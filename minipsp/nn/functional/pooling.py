"""Pooling: `max_pool2d`, `adaptive_avg_pool2d`, `adaptive_max_pool2d` (as torch.nn.functional).

ResNet's stem ends with max_pool2d(x, 3, 2, 1); PSPNet's pyramid pooling module pools the last
feature map with adaptive_avg_pool2d to 1x1, 2x2, 3x3 and 6x6. The arithmetic is in
kernels/max_pool2d and kernels/adaptive_pool (their docstrings have the formulas); this file
checks the arguments and connects the kernels to autograd.

Max pooling returns its argmax indices as well as its output: backward needs them (the gradient
goes to the winner of each window), and `return_indices=True` hands them to the caller, as torch
does. `Function.apply` returns one Tensor, so forward puts the indices, which have no gradient,
into the `indices_out` list it is given.
"""

from __future__ import annotations

import numbers

from minipsp import kernels
from minipsp.autograd.function import Function
from minipsp.kernels.max_pool2d import pool_output_size
from minipsp.nn.functional.dtypes import check_float
from minipsp.tensor import Tensor

__all__ = ["max_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d"]


class MaxPool2dFunction(Function):
    """y = max over each window of x;  dx = dy scattered to each window's argmax (summed)."""

    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding, ceil_mode, indices_out):
        k = kernels.variant("max_pool2d", x)
        y, indices = k.max_pool2d_forward(x, kernel_size, stride, padding, ceil_mode)
        ctx.save_for_backward(indices)  # (N,C,OH,OW) int64: all backward needs besides the shape
        ctx.input_shape = x.shape
        indices_out.append(indices)
        return y

    @staticmethod
    def backward(ctx, dy):
        (indices,) = ctx.saved
        dx = kernels.variant("max_pool2d", dy).max_pool2d_backward(dy, indices, ctx.input_shape)
        return dx, None, None, None, None, None


class AdaptiveAvgPool2dFunction(Function):
    """y = mean over each adaptive bin;  dx = dy / bin area, spread over the bin (overlaps add)."""

    @staticmethod
    def forward(ctx, x, output_size):
        ctx.input_shape = x.shape  # the bins are recomputed from the shapes; nothing else is saved
        return kernels.variant("adaptive_pool", x).adaptive_avg_pool2d_forward(x, output_size)

    @staticmethod
    def backward(ctx, dy):
        dx = kernels.variant("adaptive_pool", dy).adaptive_avg_pool2d_backward(dy, ctx.input_shape)
        return dx, None


class AdaptiveMaxPool2dFunction(Function):
    """y = max over each adaptive bin;  dx = dy scattered to each bin's argmax (summed)."""

    @staticmethod
    def forward(ctx, x, output_size, indices_out):
        y, indices = kernels.variant("adaptive_pool", x).adaptive_max_pool2d_forward(x, output_size)
        ctx.save_for_backward(indices)
        ctx.input_shape = x.shape
        indices_out.append(indices)
        return y

    @staticmethod
    def backward(ctx, dy):
        (indices,) = ctx.saved
        dx = kernels.variant("adaptive_pool", dy).adaptive_max_pool2d_backward(dy, indices, ctx.input_shape)
        return dx, None, None


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """The maximum of each KH x KW window: (N,C,H,W) -> (N,C,OH,OW), or (C,H,W) -> (C,OH,OW).

    kernel_size, stride (default: kernel_size), padding: an int or a pair (for H and W). The
        padding is implicit -inf, so it never wins, and may be at most half the kernel.
    OH = floor((H + 2*padding - KH) / stride) + 1 (ceil with ceil_mode, where the last window
        must still start inside the input or the left padding). Same for OW.
    dilation: only 1 is supported.
    return_indices: also return the argmax of each window as a flat index h*W + w into its
        (n, c) plane (int64, like torch's), which max_unpool-style code can use.
    """
    name = "max_pool2d"
    x, batched = _as_batch(name, input)
    kernel = _positive_pair(name, "kernel_size", kernel_size)
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) \
        else _positive_pair(name, "stride", stride)
    padding = _pair(name, "padding", padding)
    if _pair(name, "dilation", dilation) != (1, 1):
        raise ValueError(f"{name}: dilation other than 1 is not supported; got dilation={dilation!r} "
                         "(PSPNet's pooling does not use it)")
    for p, k in zip(padding, kernel):
        if p < 0 or 2 * p > k:
            raise ValueError(f"{name}: padding must be between 0 and half the kernel size; got "
                             f"padding={padding} with kernel_size={kernel}")
    H, W = x.shape[2:]
    OH, OW = (pool_output_size(size, k, s, p, bool(ceil_mode))
              for size, k, s, p in zip((H, W), kernel, stride, padding))
    if OH < 1 or OW < 1:
        raise ValueError(f"{name}: the window is larger than the padded input: input size {(H, W)}, "
                         f"kernel_size={kernel}, padding={padding} give an output of size {(OH, OW)}")
    indices_out = []
    y = MaxPool2dFunction.apply(x, kernel, stride, padding, bool(ceil_mode), indices_out)
    return _result(y, indices_out, batched, return_indices)


def adaptive_avg_pool2d(input, output_size):
    """The mean of each of OH x OW bins: (N,C,H,W) -> (N,C,OH,OW), or (C,H,W) -> (C,OH,OW).

    Bin i covers rows floor(i*H/OH) to ceil((i+1)*H/OH) (exclusive), as in torch: bins overlap
    when OH does not divide H. output_size: an int, or a pair (OH, OW) where None keeps the
    input's size along that axis.
    """
    x, batched = _as_batch("adaptive_avg_pool2d", input)
    size = _output_size("adaptive_avg_pool2d", output_size, x.shape[2:])
    y = AdaptiveAvgPool2dFunction.apply(x, size)
    return y if batched else y.squeeze(0)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """The maximum of each of OH x OW bins (the bins of adaptive_avg_pool2d).

    output_size: an int, or a pair (OH, OW) where None keeps the input's size.
    return_indices: also return each bin's argmax as a flat index h*W + w (int64).
    """
    x, batched = _as_batch("adaptive_max_pool2d", input)
    size = _output_size("adaptive_max_pool2d", output_size, x.shape[2:])
    indices_out = []
    y = AdaptiveMaxPool2dFunction.apply(x, size, indices_out)
    return _result(y, indices_out, batched, return_indices)


# -- argument checks -----------------------------------------------------------------------------
def _as_batch(name, input):
    """The input as (N,C,H,W), and whether it already was (3-D (C,H,W) gets a batch of one)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}: input must be a Tensor; got {type(input).__name__}")
    if input.ndim not in (3, 4):
        raise ValueError(f"{name}: input must be 4-D (N, C, H, W) or 3-D (C, H, W); got shape {input.shape} "
                         f"({input.ndim}-D)")
    check_float(name, "input", input.dtype)
    if min(input.shape[-2:]) < 1:
        raise ValueError(f"{name}: input's spatial size (H, W) must be positive; got {input.shape[-2:]}")
    if input.ndim == 3:
        return input.unsqueeze(0), False
    return input, True


def _result(y, indices_out, batched, return_indices):
    if not batched:
        y = y.squeeze(0)
    if not return_indices:
        return y
    indices = Tensor(indices_out[0] if batched else indices_out[0][0])
    return y, indices


def _pair(name, argument, value):
    """An int, or a sequence of one (for both axes, as torch takes it) or two ints -> a tuple of two."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (int(value), int(value))
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
        return (int(value[0]), int(value[1]))
    raise TypeError(f"{name}: {argument} must be an int or a pair of ints (for H and W); got {value!r}")


def _positive_pair(name, argument, value):
    pair = _pair(name, argument, value)
    if min(pair) < 1:
        raise ValueError(f"{name}: {argument} must be at least 1; got {argument}={value!r}")
    return pair


def _output_size(name, output_size, input_size):
    """output_size (int, or pair with None meaning 'as the input') -> (OH, OW), each >= 1."""
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        output_size = tuple(n if v is None else v for v, n in zip(output_size, input_size))
    return _positive_pair(name, "output_size", output_size)
