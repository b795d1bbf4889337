"""relu: y = max(x, 0), elementwise; dx = dy where y > 0, else 0 (the arithmetic is in kernels/relu).

Backward needs only the sign of the output, so ReLU saves y (not x) and can overwrite its input:
`relu(x, inplace=True)` writes y into x's memory and returns x itself, as torch does, saving one
activation-sized array per ReLU (PSPNet's backbone has dozens).
"""

from __future__ import annotations

from minipsp import kernels
from minipsp.autograd.function import Function
from minipsp.autograd.grad_mode import is_grad_enabled
from minipsp.nn.functional.dtypes import check_float

__all__ = ["relu"]


class ReLU(Function):
    """y = max(x, 0); saves y, whose sign is all backward needs."""

    @staticmethod
    def forward(ctx, x, inplace):
        K = kernels.variant("relu", x)
        if inplace and x.flags.c_contiguous:
            y = K.relu_forward(x, out=x)
        elif inplace:  # a strided view: compute aside, then write back into the view
            x[...] = K.relu_forward(x)
            y = x
        else:
            y = K.relu_forward(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved
        return kernels.variant("relu", y).relu_backward(dy, y), None


def relu(input, inplace=False):
    """max(input, 0) elementwise, as torch.nn.functional.relu.

    inplace=True overwrites input's data and returns input itself. That is safe when no other op
    saved input's values for its backward: true after conv2d or batch_norm (the PSPNet pattern;
    batch_norm saves its input, not its output). An op whose own backward needs its output (exp,
    sigmoid, tanh, relu) is detected and refused; a later reader of input cannot be detected.
    """
    from minipsp.tensor import Tensor

    if not isinstance(input, Tensor):
        raise TypeError(f"relu: input must be a Tensor; got {type(input).__name__}")
    if input.dtype.kind not in "iu":  # integers are fine, as in torch; bool and float16 are not
        check_float("relu", "input", input.dtype)
    if not inplace:
        return ReLU.apply(input, False)

    if is_grad_enabled() and input.requires_grad:
        if input.is_leaf:
            raise RuntimeError("relu(inplace=True): input is a leaf tensor that requires grad; modifying it "
                               "in place would lose the values its gradient is taken at. Use inplace=False.")
        if any(saved is input.data for saved in input._node.ctx.saved):
            raise RuntimeError(f"relu(inplace=True): input is the output of {input._node.function.__name__}, "
                               "which saved it for its backward; overwriting it would corrupt that gradient. "
                               "Use inplace=False.")
    # Rebase the history as torch does: a stand-in tensor takes over input's graph node, ReLU's node
    # hangs off the stand-in, and input itself becomes ReLU's output.
    before = Tensor(input.data)
    before._node, before._requires_grad = input._node, input.requires_grad
    output = ReLU.apply(before, True)
    if output._node is not None:
        input._node, input._requires_grad = output._node, True
    return input
