"""SGD's update in plain NumPy (or CuPy): the readable definition. See __init__.py."""

from __future__ import annotations


def sgd_step(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov, first):
    """param -= lr * (the gradient after weight decay and momentum), in place; see __init__.py."""
    d_p = grad
    if weight_decay != 0:
        d_p = d_p + weight_decay * param
    if momentum != 0:
        if first:
            momentum_buffer[...] = d_p          # the buffer starts at the first gradient, not at zero
        else:
            momentum_buffer *= momentum
            momentum_buffer += (1 - dampening) * d_p
        d_p = d_p + momentum * momentum_buffer if nesterov else momentum_buffer
    param -= lr * d_p
