"""`Function`: one differentiable op, its forward and backward side by side.

A Function works on raw arrays (NumPy or CuPy), never on Tensors:

    class Mul(Function):
        @staticmethod
        def forward(ctx, a, b):           # arrays in
            ctx.save_for_backward(a, b)   # save only what backward needs
            return a * b                  # an array out
        @staticmethod
        def backward(ctx, dy):            # dL/dy in
            a, b = ctx.saved
            return dy * b, dy * a         # dL/da, dL/db: one entry per forward argument

`Mul.apply(x, y)` unwraps Tensors, runs forward, and, when grad mode is on and some input
requires a gradient, wraps the result in a Tensor that remembers the node (the Function, its ctx
and the parent Tensors) so that `Tensor.backward()` can call `backward` later. Non-Tensor
arguments (ints, tuples, flags) are passed through to forward as they are; their gradient entry
in backward's result must be None.
"""

from __future__ import annotations

from minipsp.autograd.grad_mode import is_grad_enabled
from minipsp.backend import device_of


class Context:
    """What forward leaves for backward. `saved` holds the arrays; anything else is an attribute."""

    def __init__(self):
        self.saved = ()
        self.freed = False

    def save_for_backward(self, *arrays):
        self.saved = arrays


class Node:
    """One recorded op in the graph: which Function, its ctx, and its Tensor inputs by position."""

    __slots__ = ("function", "ctx", "parents")

    def __init__(self, function, ctx, parents):
        self.function = function
        self.ctx = ctx
        self.parents = parents  # list of (argument position, Tensor)


class Function:
    """Base class of every differentiable op. Subclasses define static forward and backward."""

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError(f"{__class__.__name__} subclasses define forward(ctx, *arrays)")

    @staticmethod
    def backward(ctx, dy):
        raise NotImplementedError(f"{__class__.__name__} subclasses define backward(ctx, dy)")

    @classmethod
    def apply(cls, *args):
        from minipsp.tensor import Tensor

        tensors = [(i, a) for i, a in enumerate(args) if isinstance(a, Tensor)]
        _check_same_device(cls.__name__, [t for _, t in tensors])
        arrays = [a.data if isinstance(a, Tensor) else a for a in args]
        ctx = Context()
        out = cls.forward(ctx, *arrays)
        needs_grad = is_grad_enabled() and any(t.requires_grad for _, t in tensors)
        result = Tensor(out)
        if needs_grad:
            result.requires_grad = True
            result._node = Node(cls, ctx, [(i, t) for i, t in tensors if t.requires_grad])
        return result


def _check_same_device(op_name, tensors):
    devices = {device_of(t.data) for t in tensors}
    if len(devices) > 1:
        shown = ", ".join(f"{device_of(t.data)} {tuple(t.shape)}" for t in tensors)
        raise RuntimeError(
            f"{op_name}: all tensors must be on the same device; got tensors on {shown}. "
            "Move them with .to('cuda') or .cpu() first."
        )
