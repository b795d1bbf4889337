"""conv2d: 2-D convolution as an autograd Function over the kernels in kernels/conv2d/.

    y = conv2d(x, weight, bias, stride, padding, dilation)
    x (N, C_in, H, W), weight (C_out, C_in, KH, KW), bias (C_out,) or None -> y (N, C_out, OH, OW)
    OH = floor((H + 2*padding - dilation*(KH - 1) - 1) / stride) + 1   (the same along W)

The kernels compute it as im2col + one matrix product (see kernels/conv2d/__init__.py for the math
and the gradients). This file checks the arguments, so that a mistake is reported here in terms of
conv2d's own arguments rather than as an index error deep inside a kernel.
"""

from __future__ import annotations

from minipsp import kernels
from minipsp.autograd.function import Function

__all__ = ["conv2d"]


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


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution, as torch.nn.functional.conv2d (cross-correlation, zero padding).

    input (N, C_in, H, W), weight (C_out, C_in, KH, KW), bias (C_out,) or None.
    stride, padding, dilation: an int or a pair (along H, along W). Only groups=1 is supported.
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
    padding = _pair("padding", padding, minimum=0)
    dilation = _pair("dilation", dilation, minimum=1)
    _check_shapes(input, weight, bias, padding, dilation)

    needs_grad = (input.requires_grad, weight.requires_grad, bias is not None and bias.requires_grad)
    return Conv2dFunction.apply(input, weight, bias, stride, padding, dilation, needs_grad)


def _pair(name, value, minimum):
    """(a, b) from an int or a pair of ints, each >= minimum; a clear error otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise TypeError(f"conv2d: {name} must be an int or a pair of ints; got {value!r}")
    if min(value) < minimum:
        raise ValueError(f"conv2d: {name} must be >= {minimum}; got {name}={tuple(value)}")
    return tuple(value)


def _check_shapes(input, weight, bias, padding, dilation):
    if input.ndim != 4:
        raise ValueError(f"conv2d: input must be 4-D (N, C_in, H, W); got shape {tuple(input.shape)}")
    if weight.ndim != 4:
        raise ValueError(f"conv2d: weight must be 4-D (C_out, C_in, KH, KW); got shape {tuple(weight.shape)}")
    if input.dtype != weight.dtype:
        raise TypeError(f"conv2d: input and weight must have the same dtype; got input {input.dtype} "
                        f"and weight {weight.dtype}")
    N, C_in, H, W = input.shape
    C_out, weight_in, KH, KW = weight.shape
    if C_in != weight_in:
        raise ValueError(f"conv2d: input has {C_in} channels but weight {tuple(weight.shape)} expects "
                         f"{weight_in} input channels (weight.shape[1]); they must be equal")
    for axis, size, kernel, pad, dil in (("height", H, KH, padding[0], dilation[0]),
                                         ("width", W, KW, padding[1], dilation[1])):
        extent = dil * (kernel - 1) + 1
        if extent > size + 2 * pad:
            raise ValueError(
                f"conv2d: the kernel's {axis} with dilation ({kernel} taps, dilation {dil} -> {extent} "
                f"pixels) is larger than the padded input's {axis} ({size} + 2*{pad} = {size + 2 * pad}); "
                f"input shape {tuple(input.shape)}, weight shape {tuple(weight.shape)}")
    if bias is not None:
        if tuple(bias.shape) != (C_out,):
            raise ValueError(f"conv2d: bias must have shape ({C_out},), one value per output channel of "
                             f"weight {tuple(weight.shape)}; got shape {tuple(bias.shape)}")
        if bias.dtype != weight.dtype:
            raise TypeError(f"conv2d: bias must have the dtype of weight ({weight.dtype}); got {bias.dtype}")
