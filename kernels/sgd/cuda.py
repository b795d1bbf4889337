"""SGD's update with Numba CUDA on CuPy arrays: one thread per element. Same results as reference.py.

Under Numba's CUDA simulator (CI) the kernel runs as Python on NumPy scalars of the array's dtype and
matches reference.py bit for bit. On a GPU the compiler may fuse a multiply and an add into one FMA
(one rounding where NumPy makes two), so there the results may differ in the last bit.
"""

from __future__ import annotations

import math

from numba import cuda

from .. import array_module
from . import reference

THREADS = 256


@cuda.jit
def _sgd_kernel(p, g, buf, lr, momentum, dampening_complement, weight_decay, nesterov, first, with_momentum):
    i = cuda.grid(1)
    if i < p.size:
        d = g[i]
        if weight_decay != 0:
            d = d + weight_decay * p[i]
        if with_momentum:
            if first:
                b = d
            else:
                b = momentum * buf[i] + dampening_complement * d
            buf[i] = b
            if nesterov:
                d = d + momentum * b
            else:
                d = b
        p[i] = p[i] - lr * d


def sgd_step(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov, first):
    """param -= lr * (the gradient after weight decay and momentum), in place; see __init__.py."""
    xp = array_module(param)
    if param.dtype.kind != "f":
        raise ValueError(f"sgd_step: param must be a float array; got dtype {param.dtype}")
    for name, array in (("grad", grad), ("momentum_buffer", momentum_buffer)):
        if array is not None and (array.shape != param.shape or array.dtype != param.dtype):
            raise ValueError(f"sgd_step: {name} must have param's shape {param.shape} and dtype {param.dtype}; "
                             f"got {array.shape} {array.dtype}")
    if not param.flags.c_contiguous or (momentum_buffer is not None and not momentum_buffer.flags.c_contiguous):
        return reference.sgd_step(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov,
                                  first)      # the flat loop needs to write them in place as 1-D views
    with_momentum = momentum != 0
    if with_momentum and momentum_buffer is None:
        raise ValueError("sgd_step: momentum != 0 needs a momentum_buffer")
    if not param.size:
        return
    scalar = param.dtype.type
    p = param.reshape(-1)
    g = xp.ascontiguousarray(grad).reshape(-1)
    # without momentum the kernel never touches buf; not p itself: the simulator copies each argument
    # back after the launch, and a second copy of p would undo the update
    buf = momentum_buffer.reshape(-1) if with_momentum else g
    _sgd_kernel[math.ceil(p.size / THREADS), THREADS](p, g, buf, scalar(lr), scalar(momentum),
                                                      scalar(1 - dampening), scalar(weight_decay), bool(nesterov),
                                                      bool(first), with_momentum)
