"""SGD's update with Numba on the CPU: one loop over the flattened parameter. Same results as reference.py.

No fastmath: LLVM then neither reorders nor fuses a multiply and an add into one FMA, so each
element goes through exactly the roundings that the NumPy expressions make, and the results are
equal bit for bit (tests/train/test_optim.py checks it).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import reference

# Elements from which the loop runs on all threads. The update is bound by memory bandwidth: on the
# 2-core machine of 2026-12-02 one thread already moved 46 GB/s (20 M float32 values, 8.7 ms) and two
# took 10.0 ms; machines with more memory channels than one core can fill gain from the threads.
# PSPNet has ~160 parameters, most of them batch norm's 64-2048 values, for which a parallel launch
# (tens of microseconds) would cost more than the work.
PARALLEL_MIN_SIZE = 1 << 20


@njit(cache=True, inline="always")
def _update(p, g, buf, i, lr, momentum, dampening_complement, weight_decay, nesterov, first, with_momentum):
    d = g[i]
    if weight_decay != 0:
        d = d + weight_decay * p[i]
    if with_momentum:
        b = d if first else momentum * buf[i] + dampening_complement * d
        buf[i] = b
        d = d + momentum * b if nesterov else b
    p[i] = p[i] - lr * d


@njit(cache=True, parallel=True)
def _step_parallel(p, g, buf, lr, momentum, dampening_complement, weight_decay, nesterov, first, with_momentum):
    for i in prange(p.size):
        _update(p, g, buf, i, lr, momentum, dampening_complement, weight_decay, nesterov, first, with_momentum)


@njit(cache=True)
def _step_serial(p, g, buf, lr, momentum, dampening_complement, weight_decay, nesterov, first, with_momentum):
    for i in range(p.size):
        _update(p, g, buf, i, lr, momentum, dampening_complement, weight_decay, nesterov, first, with_momentum)


def sgd_step(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov, first):
    """param -= lr * (the gradient after weight decay and momentum), in place; see __init__.py."""
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
    scalar = param.dtype.type            # the scalars rounded to param's dtype, as NumPy does
    p = param.reshape(-1)
    g = np.ascontiguousarray(grad).reshape(-1)
    buf = momentum_buffer.reshape(-1) if with_momentum else g    # not touched without momentum
    step = _step_parallel if p.size >= PARALLEL_MIN_SIZE else _step_serial
    step(p, g, buf, scalar(lr), scalar(momentum), scalar(1 - dampening), scalar(weight_decay), bool(nesterov),
         bool(first), with_momentum)
