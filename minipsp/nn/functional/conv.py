"""conv2d: 2-D convolution as an autograd Function over the kernels in kernels/conv2d/.

    y = conv2d(x, weight, bias, stride, padding, dilation)
    x (N, C_in, H, W), weight (C_out, C_in, KH, KW), bias (C_out,) or None -> y (N, C_out, OH, OW)
    OH = floor((H + 2*padding - dilation*(KH - 1) - 1) / stride) + 1   (the same along W)

The kernels compute it as im2col + one matrix product (see kernels/conv2d/__init__.py for the math
and the gradients). This file checks the arguments, so that a mistake is reported here in terms of
conv2d's own arguments rather than as an index error deep inside a kernel, and turns the forms torch
also accepts into what the kernels take: an unbatched (C_in, H, W) input becomes a batch of one, and
padding='same' | 'valid' becomes numbers.

padding='same' keeps the size (stride 1 only, as in torch): the kernel spans dilation*(KH - 1) + 1
rows, so dilation*(KH - 1) rows of zeros are needed in all, half above and half below. When that
total is odd (an even kernel, dilation 1), torch puts the extra row below (and the extra column on
the right); so does `_pad_bottom_right` here, before a symmetric convolution.
"""

from __future__ import annotations

from minipsp import kernels
from minipsp.autograd.function import Function
from minipsp.backend import get_array_module
from minipsp.nn.functional.dtypes import check_float

__all__ = ["conv2d"]

PADDING_MODES = ("same", "valid")


class Conv2dFunction(Function):
    """y = conv2d(x, weight, bias); backward gives dx, dw, db (None for inputs that need no gradient).

    Saves x and weight; backward recomputes im2col(x) instead of keeping it (KH*KW times x's size).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, needs_grad):
        ctx.save_for_backward(x, weight)
        ctx.hyper = stride, padding, dilation
        ctx.needs_grad = needs_grad
        return kernels.variant("conv2d", x).conv2d_forward(x, weight, bias, stride, padding, dilation)

    @staticmethod
    def backward(ctx, dy):
        x, weight = ctx.saved
        needs_input_grad, needs_weight_grad, needs_bias_grad = ctx.needs_grad
        dx, dw, db = kernels.variant("conv2d", dy).conv2d_backward(
            dy, x, weight, *ctx.hyper, needs_input_grad=needs_input_grad,
            needs_weight_grad=needs_weight_grad, needs_bias_grad=needs_bias_grad)
        return dx, dw, db, None, None, None, None


class PadBottomRight(Function):
    """y = x with `rows` zero rows below and `cols` zero columns on the right;  dx = dy without them."""

    @staticmethod
    def forward(ctx, x, rows, cols):
        ctx.size = x.shape[2:]
        return get_array_module(x).pad(x, ((0, 0), (0, 0), (0, rows), (0, cols)))

    @staticmethod
    def backward(ctx, dy):
        H, W = ctx.size
        return dy[:, :, :H, :W], None, None


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution, as torch.nn.functional.conv2d (cross-correlation, zero padding).

    input (N, C_in, H, W), or unbatched (C_in, H, W) which gives (C_out, OH, OW);
    weight (C_out, C_in, KH, KW), bias (C_out,) or None; all float32 or all float64.
    stride, dilation: an int or a pair (along H, along W); a one-element sequence counts for both.
    padding: the same, or 'valid' (no padding) or 'same' (output the size of the input; stride 1).
    Only groups=1 is supported.
    Returns a Tensor (N, C_out, OH, OW).
    """
    from minipsp.tensor import Tensor

    for name, value in (("input", input), ("weight", weight)):
        if not isinstance(value, Tensor):
            raise TypeError(f"conv2d: {name} must be a Tensor; got {type(value).__name__}")
    if bias is not None and not isinstance(bias, Tensor):
        raise TypeError(f"conv2d: bias must be a Tensor or None; got {type(bias).__name__}")
    if groups != 1:
        raise NotImplementedError(f"conv2d: only groups=1 is supported; got groups={groups!r}")
    stride = _pair("stride", stride, minimum=1)
    dilation = _pair("dilation", dilation, minimum=1)
    if input.ndim == 3:  # unbatched (C_in, H, W), as torch accepts: a batch of one
        return conv2d(input.unsqueeze(0), weight, bias, stride, padding, dilation).squeeze(0)
    _check_shapes(input, weight, bias)
    if isinstance(padding, str):
        padding, extra = _padding_from_mode(padding, weight.shape[2:], stride, dilation)
        if extra != (0, 0):
            input = PadBottomRight.apply(input, *extra)
    else:
        padding = _pair("padding", padding, minimum=0)
    _check_kernel_fits(input, weight, padding, dilation)

    needs_grad = (input.requires_grad, weight.requires_grad, bias is not None and bias.requires_grad)
    return Conv2dFunction.apply(input, weight, bias, stride, padding, dilation, needs_grad)


def _pair(name, value, minimum):
    """(a, b) from an int, a one-element sequence or a pair of ints, each >= minimum; a clear error otherwise."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise TypeError(f"conv2d: {name} must be an int or a pair of ints; got {value!r}")
    if min(value) < minimum:
        raise ValueError(f"conv2d: {name} must be >= {minimum}; got {name}={tuple(value)}")
    return tuple(value)


def _padding_from_mode(mode, kernel_size, stride, dilation):
    """padding='valid' | 'same' -> (symmetric padding per axis, extra zeros below / on the right)."""
    if mode not in PADDING_MODES:
        raise ValueError(f"conv2d: padding must be an int, a pair of ints, 'valid' or 'same'; got {mode!r}")
    if mode == "valid":
        return (0, 0), (0, 0)
    if stride != (1, 1):
        raise ValueError(f"conv2d: padding='same' is not supported for strided convolutions (as in torch); "
                         f"got stride={stride}. Give the padding as numbers instead")
    totals = [d * (k - 1) for k, d in zip(kernel_size, dilation)]  # zeros needed per axis, both sides together
    return tuple(t // 2 for t in totals), tuple(t - 2 * (t // 2) for t in totals)


def _check_shapes(input, weight, bias):
    if input.ndim != 4:
        raise ValueError(f"conv2d: input must be 4-D (N, C_in, H, W) or 3-D (C_in, H, W); "
                         f"got shape {tuple(input.shape)}")
    if weight.ndim != 4:
        raise ValueError(f"conv2d: weight must be 4-D (C_out, C_in, KH, KW); got shape {tuple(weight.shape)}")
    check_float("conv2d", "input", input.dtype)
    check_float("conv2d", "weight", weight.dtype)
    if input.dtype != weight.dtype:
        raise TypeError(f"conv2d: input and weight must have the same dtype; got input {input.dtype} "
                        f"and weight {weight.dtype}")
    C_in = input.shape[1]
    C_out, weight_in, KH, KW = weight.shape
    if C_in != weight_in:
        raise ValueError(f"conv2d: input has {C_in} channels but weight {tuple(weight.shape)} expects "
                         f"{weight_in} input channels (weight.shape[1]); they must be equal")
    if C_out == 0:
        raise ValueError(f"conv2d: weight {tuple(weight.shape)} has 0 output channels (weight.shape[0]); "
                         "a convolution needs at least one (torch refuses it too)")
    if C_in == 0:
        raise ValueError(f"conv2d: input {tuple(input.shape)} has 0 channels: there is nothing to convolve "
                         "(torch gives an output with 0 channels here, whatever weight.shape[0] says); "
                         "give at least one input channel")
    if min(KH, KW) == 0:
        raise ValueError(f"conv2d: weight {tuple(weight.shape)} has an empty kernel (KH, KW) = {(KH, KW)}")
    if bias is not None:
        if tuple(bias.shape) != (C_out,):
            raise ValueError(f"conv2d: bias must have shape ({C_out},), one value per output channel of "
                             f"weight {tuple(weight.shape)}; got shape {tuple(bias.shape)}")
        if bias.dtype != weight.dtype:
            raise TypeError(f"conv2d: bias must have the dtype of weight ({weight.dtype}); got {bias.dtype}")


def _check_kernel_fits(input, weight, padding, dilation):
    H, W = input.shape[2:]
    KH, KW = weight.shape[2:]
    for axis, size, kernel, pad, dil in (("height", H, KH, padding[0], dilation[0]),
                                         ("width", W, KW, padding[1], dilation[1])):
        extent = dil * (kernel - 1) + 1
        if extent > size + 2 * pad:
            raise ValueError(
                f"conv2d: the kernel's {axis} with dilation ({kernel} taps, dilation {dil} -> {extent} "
                f"pixels) is larger than the padded input's {axis} ({size} + 2*{pad} = {size + 2 * pad}); "
                f"input shape {tuple(input.shape)}, weight shape {tuple(weight.shape)}")
