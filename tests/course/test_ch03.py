"""Chapter 03's exercises: each check passes the reference solution and rejects plausible mistakes."""

import numpy as np
from course_helpers import make_chapter_tests

import minipsp
from minipsp.course import run
from minipsp.course.solutions import ch03 as solutions

AXES = (0, 2, 3)


def running_biased_var(running_mean, running_var, x, momentum):
    running_mean[...] = (1 - momentum) * running_mean + momentum * x.mean(axis=AXES)
    running_var[...] = (1 - momentum) * running_var + momentum * x.var(axis=AXES)


def running_momentum_swapped(running_mean, running_var, x, momentum):
    M = x.shape[0] * x.shape[2] * x.shape[3]
    running_mean[...] = momentum * running_mean + (1 - momentum) * x.mean(axis=AXES)
    running_var[...] = momentum * running_var + (1 - momentum) * x.var(axis=AXES) * M / (M - 1)


def running_not_in_place(running_mean, running_var, x, momentum):
    """Rebinds the names: the caller's arrays never change."""
    M = x.shape[0] * x.shape[2] * x.shape[3]
    running_mean = (1 - momentum) * running_mean + momentum * x.mean(axis=AXES)
    running_var = (1 - momentum) * running_var + momentum * x.var(axis=AXES) * M / (M - 1)
    return running_mean, running_var


def ops_statistics_from_numpy(x, weight, bias, eps):
    """The statistics computed on the array: constants to autograd, so dx is the eval-mode one."""
    mean = minipsp.tensor(x.numpy().mean(axis=AXES, keepdims=True))
    rstd = minipsp.tensor(1 / np.sqrt(x.numpy().var(axis=AXES, keepdims=True) + eps))
    return weight.reshape(1, -1, 1, 1) * ((x - mean) * rstd) + bias.reshape(1, -1, 1, 1)


def ops_unbiased_var(x, weight, bias, eps):
    M = x.shape[0] * x.shape[2] * x.shape[3]
    mean = x.mean(dim=AXES, keepdim=True)
    var = ((x - mean) ** 2).sum(dim=AXES, keepdim=True) / (M - 1)
    return weight.reshape(1, -1, 1, 1) * ((x - mean) * (var + eps) ** -0.5) + bias.reshape(1, -1, 1, 1)


def ops_without_eps(x, weight, bias, eps):
    mean = x.mean(dim=AXES, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=AXES, keepdim=True)
    return weight.reshape(1, -1, 1, 1) * ((x - mean) * var ** -0.5) + bias.reshape(1, -1, 1, 1)


def backward_naive(dy, x, weight, eps):
    """The eval-mode formula: statistics held constant."""
    _, dw, db = solutions.batch_norm_backward(dy, x, weight, eps)
    rstd = 1 / np.sqrt(x.var(axis=AXES, keepdims=True) + eps)
    return dy * weight.reshape(1, -1, 1, 1) * rstd, dw, db


def backward_without_xhat_term(dy, x, weight, eps):
    """Removes the mean of g but forgets its component along xhat (the path through the variance)."""
    _, dw, db = solutions.batch_norm_backward(dy, x, weight, eps)
    rstd = 1 / np.sqrt(x.var(axis=AXES, keepdims=True) + eps)
    g = dy * weight.reshape(1, -1, 1, 1)
    return rstd * (g - g.mean(axis=AXES, keepdims=True)), dw, db


def backward_dweight_from_x(dy, x, weight, eps):
    dx, _, db = solutions.batch_norm_backward(dy, x, weight, eps)
    return dx, (dy * x).sum(axis=AXES), db


MISTAKES = {
    "3.1": [running_biased_var, running_momentum_swapped, running_not_in_place],
    "3.2": [ops_statistics_from_numpy, ops_unbiased_var, ops_without_eps],
    "3.3": [backward_naive, backward_without_xhat_term, backward_dweight_from_x],
}

(test_solution_passes, test_mistake_rejected, test_stub_is_not_solved,
 test_chapter_has_exercises_and_mistakes) = make_chapter_tests(3, MISTAKES)


def test_running_stats_not_in_place_is_named():
    """Rebinding the names (with or without returning new arrays) is reported as such."""
    for mistake in (running_not_in_place, lambda rm, rv, x, m: running_not_in_place(rm, rv, x, m) and None):
        message = run("3.1", mistake).message
        assert "unchanged" in message and "rebinds" in message, message


def test_missing_eps_is_named():
    message = run("3.2", ops_without_eps).message
    assert "eps" in message and "close" in message, message
