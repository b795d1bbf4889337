"""Chapter 09's exercises: each check passes the reference solution and rejects plausible mistakes."""

from course_helpers import make_chapter_tests


def poly_power_inside(base_lr, it, max_iter, power=0.9):  # (1 - (it / max) ** power)
    return base_lr * (1 - (it / max_iter) ** power)


def poly_linear(base_lr, it, max_iter, power=0.9):  # ignores the power
    return base_lr * (1 - it / max_iter)


def poly_one_ahead(base_lr, it, max_iter, power=0.9):  # it + 1: the rate of the next iteration
    return base_lr * max(0.0, 1 - (it + 1) / max_iter) ** power


def sgd_moving_average(p, g, buf, lr, momentum, weight_decay):  # buf = mu buf + (1 - mu) g: an average, not a sum
    g = g + weight_decay * p
    buf = g.copy() if buf is None else momentum * buf + (1 - momentum) * g
    return p - lr * buf, buf


def sgd_lr_inside(p, g, buf, lr, momentum, weight_decay):  # the textbook v = mu v + lr g; p -= v: same only at fixed lr
    g = g + weight_decay * p
    buf = lr * g if buf is None else momentum * buf + lr * g
    return p - buf, buf


def sgd_decay_after_momentum(p, g, buf, lr, momentum, weight_decay):  # decoupled decay (AdamW style): not PyTorch's SGD
    buf = g.copy() if buf is None else momentum * buf + g
    return p - lr * (buf + weight_decay * p), buf


MISTAKES = {
    "9.1": [sgd_moving_average, sgd_lr_inside, sgd_decay_after_momentum],
    "9.2": [poly_power_inside, poly_linear, poly_one_ahead],
}

(test_solution_passes, test_mistake_rejected, test_stub_is_not_solved,
 test_chapter_has_exercises_and_mistakes) = make_chapter_tests(9, MISTAKES)
