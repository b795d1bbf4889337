"""ReLU with Numba on the CPU: one parallel loop over the flattened array. Same results as reference.py."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def _relu_forward_flat(x, y):
    for i in prange(x.size):
        # `x <= 0` (not `x > 0`) keeps NaN as NaN, as np.maximum and torch.relu do.
        y[i] = 0 if x[i] <= 0 else x[i]


@njit(cache=True, parallel=True)
def _relu_backward_flat(dy, y, dx):
    for i in prange(dy.size):
        dx[i] = dy[i] if y[i] > 0 else 0


def relu_forward(x, out=None):
    """y = max(x, 0), written into `out` if given (out=x works in place)."""
    if out is None:
        out = np.empty_like(x, order="C")
    if not out.flags.c_contiguous:
        raise ValueError(f"relu_forward: `out` must be C-contiguous; got strides {out.strides}")
    _relu_forward_flat(np.ascontiguousarray(x).reshape(-1), out.reshape(-1))
    return out


def relu_backward(dy, y):
    """dx = dy where y > 0, else 0."""
    dx = np.empty_like(dy, order="C")
    _relu_backward_flat(np.ascontiguousarray(dy).reshape(-1), np.ascontiguousarray(y).reshape(-1),
                        dx.reshape(-1))
    return dx
