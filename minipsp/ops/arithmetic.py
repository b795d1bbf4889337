"""Elementwise arithmetic with NumPy broadcasting, and its gradients.

Broadcasting copies an input along some axes in forward, so in backward the gradient is summed
back over those axes (`unbroadcast`). Every binary op checks its shapes first so that a mismatch
names both shapes instead of surfacing as a bare NumPy error.
"""

from __future__ import annotations

from minipsp.autograd.function import Function
from minipsp.backend import get_array_module


def broadcast_shape(op_name, a_shape, b_shape):
    """The broadcast result shape, or a ValueError naming both shapes."""
    a_shape, b_shape = tuple(a_shape), tuple(b_shape)
    result = []
    for i in range(1, max(len(a_shape), len(b_shape)) + 1):
        da = a_shape[-i] if i <= len(a_shape) else 1
        db = b_shape[-i] if i <= len(b_shape) else 1
        if da != db and da != 1 and db != 1:
            raise ValueError(f"{op_name}: shapes {a_shape} and {b_shape} cannot be broadcast together "
                             f"(dimension -{i}: {da} vs {db})")
        result.append(max(da, db))
    return tuple(reversed(result))


def unbroadcast(grad, shape):
    """Sum `grad` down to `shape`: over leading axes added by broadcasting, and over axes of size 1."""
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad


class Add(Function):
    """y = a + b;  da = dy, db = dy (summed over broadcast axes)."""

    @staticmethod
    def forward(ctx, a, b):
        broadcast_shape("add", a.shape, b.shape)
        ctx.shapes = a.shape, b.shape
        return a + b

    @staticmethod
    def backward(ctx, dy):
        a_shape, b_shape = ctx.shapes
        return unbroadcast(dy, a_shape), unbroadcast(dy, b_shape)


class Sub(Function):
    """y = a - b;  da = dy, db = -dy."""

    @staticmethod
    def forward(ctx, a, b):
        broadcast_shape("sub", a.shape, b.shape)
        ctx.shapes = a.shape, b.shape
        return a - b

    @staticmethod
    def backward(ctx, dy):
        a_shape, b_shape = ctx.shapes
        return unbroadcast(dy, a_shape), unbroadcast(-dy, b_shape)


class Mul(Function):
    """y = a * b;  da = dy * b, db = dy * a."""

    @staticmethod
    def forward(ctx, a, b):
        broadcast_shape("mul", a.shape, b.shape)
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, dy):
        a, b = ctx.saved
        return unbroadcast(dy * b, a.shape), unbroadcast(dy * a, b.shape)


class Div(Function):
    """y = a / b;  da = dy / b, db = -dy * a / b^2."""

    @staticmethod
    def forward(ctx, a, b):
        broadcast_shape("div", a.shape, b.shape)
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, dy):
        a, b = ctx.saved
        return unbroadcast(dy / b, a.shape), unbroadcast(-dy * a / (b * b), b.shape)


class Neg(Function):
    """y = -a."""

    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, dy):
        return (-dy,)


class Pow(Function):
    """y = a ** b;  da = dy * b * a^(b-1), db = dy * y * log(a) (only where a > 0 matters)."""

    @staticmethod
    def forward(ctx, a, b):
        broadcast_shape("pow", a.shape, b.shape)
        y = a**b
        ctx.save_for_backward(a, b, y)
        return y

    @staticmethod
    def backward(ctx, dy):
        a, b, y = ctx.saved
        xp = get_array_module(a)
        da = dy * b * a ** (b - 1)
        # log(a) is undefined for a <= 0; there the exponent's gradient is taken as 0, as torch does for a == 0.
        safe_log = xp.log(xp.where(a > 0, a, 1))
        db = dy * y * safe_log
        return unbroadcast(da, a.shape), unbroadcast(db, b.shape)


class Exp(Function):
    """y = e^a;  da = dy * y."""

    @staticmethod
    def forward(ctx, a):
        y = get_array_module(a).exp(a)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved
        return (dy * y,)


class Log(Function):
    """y = ln a;  da = dy / a."""

    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return get_array_module(a).log(a)

    @staticmethod
    def backward(ctx, dy):
        (a,) = ctx.saved
        return (dy / a,)


class Sigmoid(Function):
    """y = 1 / (1 + e^-a);  da = dy * y * (1 - y)."""

    @staticmethod
    def forward(ctx, a):
        xp = get_array_module(a)
        # Split by sign so that exp never overflows.
        e = xp.exp(-xp.abs(a))
        y = xp.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved
        return (dy * y * (1 - y),)


class Tanh(Function):
    """y = tanh a;  da = dy * (1 - y^2)."""

    @staticmethod
    def forward(ctx, a):
        y = get_array_module(a).tanh(a)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved
        return (dy * (1 - y * y),)


class MatMul(Function):
    """y = a @ b with NumPy's matmul rules (batched, broadcast over leading axes).

    da = dy @ b^T, db = a^T @ dy, with 1-D operands promoted to matrices and back.
    """

    @staticmethod
    def forward(ctx, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: both operands need at least 1 dimension; got shapes {a.shape} and {b.shape}")
        k_a = a.shape[-1]
        k_b = b.shape[-2] if b.ndim >= 2 else b.shape[0]
        if k_a != k_b:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not fit: "
                             f"a's last dimension {k_a} must equal b's {'second-to-last' if b.ndim >= 2 else 'only'} "
                             f"dimension {k_b}")
        if a.ndim > 2 and b.ndim > 2:
            broadcast_shape("matmul (batch dimensions)", a.shape[:-2], b.shape[:-2])
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, dy):
        a, b = ctx.saved
        xp = get_array_module(a)
        a2 = a[None, :] if a.ndim == 1 else a   # (K,) -> (1, K)
        b2 = b[:, None] if b.ndim == 1 else b   # (K,) -> (K, 1)
        dy2 = dy
        if a.ndim == 1:
            dy2 = xp.expand_dims(dy2, -2)
        if b.ndim == 1:
            dy2 = xp.expand_dims(dy2, -1)
        da = dy2 @ xp.swapaxes(b2, -1, -2)
        db = xp.swapaxes(a2, -1, -2) @ dy2
        if a.ndim == 1:
            da = da[..., 0, :]
        if b.ndim == 1:
            db = db[..., 0]
        return unbroadcast(da, a.shape), unbroadcast(db, b.shape)


class Cast(Function):
    """y = a converted to another float dtype; the gradient is converted back."""

    @staticmethod
    def forward(ctx, a, dtype):
        ctx.dtype = a.dtype
        return a.astype(dtype)

    @staticmethod
    def backward(ctx, dy):
        return dy.astype(ctx.dtype), None

