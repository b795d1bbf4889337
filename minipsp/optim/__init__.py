"""Optimisers and learning-rate schedules: SGD with momentum, and the poly schedule PSPNet trains with.

    from minipsp.optim import SGD, PolyLR
    optimizer = SGD([{"params": backbone, "lr": 0.01}, {"params": head, "lr": 0.1}],
                    lr=0.01, momentum=0.9, weight_decay=1e-4)
    scheduler = PolyLR(optimizer, max_iter=1000, power=0.9)
    for it in range(1000):
        optimizer.zero_grad(); loss = ...; loss.backward()
        optimizer.step(); scheduler.step()
"""

from minipsp.optim.lr_scheduler import PolyLR, poly_lr
from minipsp.optim.sgd import SGD

__all__ = ["SGD", "PolyLR", "poly_lr"]
