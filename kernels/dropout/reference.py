"""Dropout in plain NumPy (or CuPy): the readable definition. See __init__.py."""

from __future__ import annotations


def keep_scale(p):
    """1 / (1 - p), the factor that keeps the expectation; 0 when p == 1 (nothing is kept)."""
    return 1.0 / (1.0 - p) if p < 1 else 0.0


def dropout_forward(x, mask, p):
    """y = x * mask * scale; mask is a bool array of x's shape."""
    return (x * mask * keep_scale(p)).astype(x.dtype, copy=False)


def dropout_backward(dy, mask, p):
    """dx = dy * mask * scale: y is linear in x, so backward applies the same map to dy."""
    return dropout_forward(dy, mask, p)


def dropout2d_forward(x, mask, p):
    """y[n, c] = x[n, c] * mask[n, c] * scale; x (N, C, H, W), mask bool (N, C)."""
    return (x * mask[:, :, None, None] * keep_scale(p)).astype(x.dtype, copy=False)


def dropout2d_backward(dy, mask, p):
    """dx = dy * mask * scale, the same per-channel map as the forward."""
    return dropout2d_forward(dy, mask, p)
