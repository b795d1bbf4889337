"""Reference solutions of chapter 03's exercises (batch norm)."""

import numpy as np

AXES = (0, 2, 3)  # everything but the channel


def update_running_stats(running_mean, running_var, x, momentum):
    """3.1: the moving averages batch norm keeps in training mode, updated in place."""
    M = x.shape[0] * x.shape[2] * x.shape[3]
    mean = x.mean(axis=AXES)
    var = x.var(axis=AXES) * M / (M - 1)  # unbiased, as torch stores it
    running_mean[...] = (1 - momentum) * running_mean + momentum * mean
    running_var[...] = (1 - momentum) * running_var + momentum * var


def batch_norm_from_ops(x, weight, bias, eps):
    """3.2: training-mode batch norm written with Tensor ops only; autograd derives its backward."""
    mean = x.mean(dim=AXES, keepdim=True)                      # 1,C,1,1: a node of the graph
    var = ((x - mean) ** 2).mean(dim=AXES, keepdim=True)       # biased: divide by M
    xhat = (x - mean) * (var + eps) ** -0.5
    return weight.reshape(1, -1, 1, 1) * xhat + bias.reshape(1, -1, 1, 1)


def batch_norm_backward(dy, x, weight, eps):
    """3.3: dx, dweight, dbias of training-mode batch norm, from the formula of section 4."""
    M = x.shape[0] * x.shape[2] * x.shape[3]
    mean = x.mean(axis=AXES, keepdims=True)
    rstd = 1 / np.sqrt(x.var(axis=AXES, keepdims=True) + eps)
    xhat = (x - mean) * rstd
    g = dy * weight.reshape(1, -1, 1, 1)                       # dL/dxhat
    dx = rstd / M * (M * g - g.sum(axis=AXES, keepdims=True) - xhat * (g * xhat).sum(axis=AXES, keepdims=True))
    return dx, (dy * xhat).sum(axis=AXES), dy.sum(axis=AXES)
