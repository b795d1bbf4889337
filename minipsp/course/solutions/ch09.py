"""Chapter 09 (training): reference solutions. Open after you have tried; the check's message comes first."""


def poly_lr(base_lr, iteration, max_iter, power=0.9):
    """base_lr * (1 - iteration / max_iter) ** power: base_lr at iteration 0, exactly 0 at max_iter."""
    return base_lr * (1 - iteration / max_iter) ** power


def sgd_step(p, g, buf, lr, momentum, weight_decay):
    """One step of torch.optim.SGD (no dampening, no Nesterov) on arrays; returns (new p, new buf)."""
    g = g + weight_decay * p  # the L2 penalty's gradient, folded in before the momentum
    buf = g.copy() if buf is None else momentum * buf + g  # the buffer starts at the first gradient
    return p - lr * buf, buf
