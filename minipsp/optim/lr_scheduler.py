"""The poly learning-rate schedule of DeepLab and PSPNet: lr = base_lr * (1 - it / max_iter) ** power.

The rate starts at base_lr and falls smoothly to 0 at max_iter; power 0.9 keeps it near base_lr for
longer than a linear decay would. `PolyLR` applies it to every parameter group from that group's own
initial rate, so a group at 10x the base rate (PSPNet's new layers) stays at 10x throughout.

    scheduler = PolyLR(optimizer, max_iter=1000)   # sets group["initial_lr"], leaves lr unchanged
    optimizer.step(); scheduler.step()             # after iteration it: lr = initial_lr * poly(it)

This is `torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=max_iter, power=power)`: the
first update uses base_lr. (hszhao/semseg sets poly_lr(base_lr, it + 1, ...) before update `it`, one
iteration ahead; the difference is a factor (1 - 1/max_iter) ** 0.9 at the start, nothing at the end.)
"""

from __future__ import annotations

import math
import numbers


def _check_power(power, where):
    # a negative power makes the rate grow to infinity at the end (0 ** -1: ZeroDivisionError); NaN makes it NaN
    if isinstance(power, bool) or not isinstance(power, numbers.Real) or not math.isfinite(power) or power < 0:
        raise ValueError(f"{where}: power must be a finite number >= 0 (0.9 in PSPNet); got {power!r}")


def poly_lr(base_lr: float, iteration: int, max_iter: int, power: float = 0.9) -> float:
    """base_lr * (1 - iteration / max_iter) ** power, for 0 <= iteration <= max_iter."""
    for name, value in (("max_iter", max_iter), ("iteration", iteration)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"poly_lr: {name} must be an int; got {value!r}")
    if max_iter <= 0:
        raise ValueError(f"poly_lr: max_iter must be > 0; got {max_iter!r}")
    if not 0 <= iteration <= max_iter:
        raise ValueError(f"poly_lr: iteration must be in [0, max_iter={max_iter}]; got {iteration!r}")
    _check_power(power, "poly_lr")
    return base_lr * (1.0 - iteration / max_iter) ** power


class PolyLR:
    """Set every group's lr to poly_lr(group["initial_lr"], it, max_iter, power) at each `step()`.

    Stepping past max_iter keeps the rate at 0, as PyTorch's PolynomialLR does.
    """

    def __init__(self, optimizer, max_iter: int, power: float = 0.9):
        if not isinstance(max_iter, numbers.Integral) or max_iter <= 0:
            raise ValueError(f"PolyLR: max_iter must be an int > 0; got {max_iter!r}")
        _check_power(power, "PolyLR")
        self.optimizer = optimizer
        self.max_iter = max_iter
        self.power = power
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])  # a resumed optimiser already has it
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_iter = 0
        self._apply()

    def get_lr(self) -> list:
        """The rates for the current iteration, one per group."""
        it = min(self.last_iter, self.max_iter)
        return [poly_lr(base, it, self.max_iter, self.power) for base in self.base_lrs]

    def _apply(self):
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def step(self) -> None:
        """Advance one iteration and write the new rate into every group."""
        self.last_iter += 1
        self._apply()

    def get_last_lr(self) -> list:
        """The rates `step()` (or the constructor) last set, one per group."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        return {"max_iter": self.max_iter, "power": self.power, "last_iter": self.last_iter,
                "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the iteration count and rates; the groups' lr are set to match."""
        if len(state_dict["base_lrs"]) != len(self.optimizer.param_groups):
            raise ValueError(f"the saved scheduler has {len(state_dict['base_lrs'])} groups but the optimiser "
                             f"has {len(self.optimizer.param_groups)}")
        self.max_iter = state_dict["max_iter"]
        self.power = state_dict["power"]
        self.last_iter = state_dict["last_iter"]
        self.base_lrs = list(state_dict["base_lrs"])
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["initial_lr"] = base
        self._apply()

    def __repr__(self):
        return f"PolyLR(max_iter={self.max_iter}, power={self.power}, last_iter={self.last_iter})"
