"""Chapter 09 (training): the checks of its exercises. The truth is minipsp.optim (PyTorch's formulas).

9.1 sgd_step(p, g, buf, lr, momentum, weight_decay) -> (p, buf): one step of SGD with momentum and weight
    decay as torch.optim.SGD takes it, checked over several steps (at a falling rate, as under the poly
    schedule) against minipsp.optim.SGD.
9.2 poly_lr(base_lr, iteration, max_iter, power): the poly schedule, checked against minipsp.optim.PolyLR.
"""

from __future__ import annotations

import numpy as np

from minipsp import nn
from minipsp.course import Mismatch, exercise, expect_close
from minipsp.optim import SGD, PolyLR


@exercise("9.2", "the poly learning-rate schedule", solution="poly_lr",
          hint="lr = base_lr * (1 - iteration / max_iter) ** power: the power applies to the whole (1 - it / max), "
               "it starts at base_lr (iteration 0) and is exactly 0 at iteration max_iter")
def check_poly_lr(poly_lr):
    for base, max_iter, power in ((0.01, 1000, 0.9), (0.1, 7, 0.9), (0.02, 50, 2.0)):
        p = nn.Parameter(np.zeros(1))
        optimizer = SGD([{"params": [p], "lr": base}], lr=base, momentum=0.9)
        scheduler = PolyLR(optimizer, max_iter=max_iter, power=power)
        for it in range(max_iter + 1):
            got = poly_lr(base, it, max_iter, power)
            expected = optimizer.param_groups[0]["lr"]  # what PolyLR set for iteration `it`
            if got is None:
                raise Mismatch("poly_lr returned None: return the rate")
            expect_close(f"poly_lr({base}, {it}, {max_iter}, {power})", float(got), expected, rtol=1e-12, atol=1e-15)
            scheduler.step()
    return "poly_lr equals the rates minipsp.optim.PolyLR sets, at every iteration of 3 schedules (power 0.9 and 2)"


def _reference_steps(p0, grads, lrs, momentum, weight_decay):
    """Parameters after each step of minipsp.optim.SGD (the truth), starting from p0, at rate lrs[step]."""
    w = nn.Parameter(p0.copy())
    optimizer = SGD([w], lr=lrs[0], momentum=momentum, weight_decay=weight_decay)
    out = []
    for g, lr in zip(grads, lrs):
        optimizer.param_groups[0]["lr"] = lr  # as a scheduler does between steps
        w.grad = g.copy()
        optimizer.step()
        out.append(w.data.copy())
    return out


@exercise("9.1", "one step of SGD with momentum and weight decay", solution="sgd_step",
          hint="in PyTorch's order: g = g + weight_decay * p; buf = g on the first step (buf is None), "
               "else buf = momentum * buf + g; p = p - lr * buf. Return copies, not the inputs changed in place")
def check_sgd_step(sgd_step):
    rng = np.random.default_rng(9)
    for lr, momentum, weight_decay in ((0.1, 0.9, 1e-2), (0.05, 0.0, 0.0), (0.01, 0.9, 0.0), (0.2, 0.5, 0.1)):
        p0 = rng.normal(size=6)
        grads = [rng.normal(size=6) for _ in range(4)]
        lrs = [lr * (1 - step / 5) ** 0.9 for step in range(4)]  # a falling rate, as the poly schedule gives
        expected = _reference_steps(p0, grads, lrs, momentum, weight_decay)
        p, buf = p0.copy(), None
        for step, (g, want, lr_now) in enumerate(zip(grads, expected, lrs)):
            out = sgd_step(p, g.copy(), buf, lr_now, momentum, weight_decay)
            if not (isinstance(out, tuple) and len(out) == 2):
                raise Mismatch(f"sgd_step must return (p, buf), the new parameters and momentum buffer; got "
                               f"{type(out).__name__}")
            p, buf = out
            expect_close(f"p after step {step + 1} (lr {lr_now:.4g}, momentum {momentum}, weight_decay {weight_decay})",
                         p, want, rtol=1e-10, atol=1e-12)
    return ("4 steps of sgd_step, at a falling learning rate, equal minipsp.optim.SGD (= torch.optim.SGD) for 4 "
            "settings: with and without momentum and weight decay")
