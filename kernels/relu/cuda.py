"""ReLU with Numba CUDA on CuPy arrays: one thread per element. Same results as reference.py.

Under Numba's CUDA simulator the same kernels run on NumPy arrays, so the launchers allocate
their outputs with the input's own array module.
"""

from __future__ import annotations

import math

from numba import cuda

from .. import array_module

THREADS = 256


# `zero` is passed in with the array's dtype: a literal 0 next to a float32 element would make Numba
# type the select as float64, a slow conversion each way on GPUs with little float64 throughput.
@cuda.jit
def _relu_forward_kernel(x, y, zero):
    i = cuda.grid(1)
    if i < x.size:
        # `x <= 0` (not `x > 0`) keeps NaN as NaN, as np.maximum and torch.relu do.
        y[i] = zero if x[i] <= zero else x[i]


@cuda.jit
def _relu_backward_kernel(dy, y, dx, zero):
    i = cuda.grid(1)
    if i < dy.size:
        dx[i] = dy[i] if y[i] > zero else zero


def relu_forward(x, out=None):
    """y = max(x, 0), written into `out` if given (out=x works in place)."""
    xp = array_module(x)
    if out is None:
        out = xp.empty_like(x, order="C")
    if not out.flags.c_contiguous:
        raise ValueError(f"relu_forward: `out` must be C-contiguous; got strides {out.strides}")
    if x.size:
        blocks = math.ceil(x.size / THREADS)
        _relu_forward_kernel[blocks, THREADS](xp.ascontiguousarray(x).reshape(-1), out.reshape(-1),
                                              out.dtype.type(0))
    return out


def relu_backward(dy, y):
    """dx = dy where y > 0, else 0."""
    xp = array_module(dy)
    dx = xp.empty_like(dy, order="C")
    if dy.size:
        blocks = math.ceil(dy.size / THREADS)
        _relu_backward_kernel[blocks, THREADS](
            xp.ascontiguousarray(dy).reshape(-1), xp.ascontiguousarray(y).reshape(-1), dx.reshape(-1),
            dx.dtype.type(0)
        )
    return dx
