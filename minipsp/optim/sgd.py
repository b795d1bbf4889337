"""Stochastic gradient descent with momentum, weight decay and Nesterov, as `torch.optim.SGD` does it.

For each parameter p with gradient g, one `step()` computes (the same order as PyTorch):

    g   = g + weight_decay * p                       (L2 penalty, folded into the gradient)
    buf = g                                          on the first step (the buffer starts at g)
    buf = momentum * buf + (1 - dampening) * g       afterwards
    g   = g + momentum * buf   if nesterov   else   buf
    p   = p - lr * g

Parameters come in *groups*, each a dict with its own hyper-parameters: PSPNet trains the pretrained
backbone at lr and the new layers (PPM, classifier, aux) at 10 * lr. `optimizer.param_groups` is that
list; a scheduler changes `group["lr"]` in place.

`state_dict()` holds the momentum buffers (NumPy arrays, keyed by the parameter's index counted over
all groups in order) and the groups' hyper-parameters, so a saved run resumes exactly.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from minipsp import kernels
from minipsp.autograd import no_grad
from minipsp.backend import get_array_module, to_numpy

HYPER_PARAMETERS = ("lr", "momentum", "dampening", "weight_decay", "nesterov")


class SGD:
    """SGD(params_or_groups, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False).

    `params_or_groups` is an iterable of parameters (tensors with `.data` and `.grad`), or a list of
    dicts `{"params": [...], "lr": ..., ...}`; keys a group leaves out take the defaults given here.
    """

    def __init__(self, params_or_groups, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        self.defaults = {"lr": lr, "momentum": momentum, "dampening": dampening,
                         "weight_decay": weight_decay, "nesterov": nesterov}
        _check_hyper_parameters(self.defaults, where="SGD")
        if _is_tensor(params_or_groups) or isinstance(params_or_groups, dict):
            # iterating over one tensor would give its rows: copies no gradient reaches, so no step moves them
            raise TypeError(f"SGD: params must be an iterable of tensors or of parameter-group dicts, e.g. "
                            f"model.parameters() or [weight]; got one {type(params_or_groups).__name__}")
        items = list(params_or_groups)
        if not items:
            raise ValueError("SGD got an empty parameter list; pass model.parameters() or a list of groups")
        groups = items if isinstance(items[0], dict) else [{"params": items}]
        self.param_groups = []
        self.state = {}  # id(parameter) -> {"momentum_buffer": array}
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict) -> None:
        """Add a group of parameters with its own hyper-parameters (missing ones take the defaults)."""
        if not isinstance(group, dict):
            raise TypeError(f"a parameter group must be a dict with a 'params' key; got {type(group).__name__}")
        if "params" not in group:
            raise ValueError(f"parameter group {len(self.param_groups)} has no 'params' key; got keys "
                             f"{sorted(group)}")
        unknown = set(group) - set(HYPER_PARAMETERS) - {"params", "initial_lr"}
        if unknown:
            raise ValueError(f"parameter group {len(self.param_groups)} has unknown keys {sorted(unknown)}; "
                             f"SGD understands 'params', {', '.join(map(repr, HYPER_PARAMETERS))}")
        params = group["params"]
        params = [params] if _is_tensor(params) else list(params)
        if not params:
            raise ValueError(f"parameter group {len(self.param_groups)} has an empty 'params' list")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(params):
            if not _is_tensor(p):
                raise TypeError(f"parameter {i} of group {len(self.param_groups)} is a {type(p).__name__}, "
                                "not a tensor; SGD optimises tensors (model.parameters())")
            if id(p) in seen:
                raise ValueError(f"parameter {i} of group {len(self.param_groups)} already appears in "
                                 "another group (or twice in this one)")
            seen.add(id(p))
        new_group = {**self.defaults, **group, "params": params}
        _check_hyper_parameters(new_group, where=f"parameter group {len(self.param_groups)}")
        self.param_groups.append(new_group)

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (sets `.grad` to None, as PyTorch does by default)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient, in place on `p.data` (see the module docstring)."""
        with no_grad():
            for group in self.param_groups:
                lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
                weight_decay, nesterov = group["weight_decay"], group["nesterov"]
                for p in group["params"]:
                    if p.grad is None:
                        continue  # a parameter that took no part in the loss is left alone
                    d_p = p.grad.data if _is_tensor(p.grad) else p.grad
                    if d_p.shape != p.data.shape:
                        raise RuntimeError(f"a parameter of shape {tuple(p.data.shape)} has a gradient of "
                                           f"shape {tuple(d_p.shape)}")
                    xp = get_array_module(p.data)
                    d_p = xp.asarray(d_p, dtype=p.data.dtype)       # a gradient of another dtype: as torch
                    buf, first = None, False
                    if momentum != 0:
                        state = self.state.setdefault(id(p), {})
                        buf = state.get("momentum_buffer")
                        if buf is None:
                            buf = state["momentum_buffer"] = xp.empty_like(p.data, order="C")
                            first = True
                    # one pass over p, g and the buffer (kernels/sgd; the math is in its reference.py)
                    kernels.variant("sgd", p.data).sgd_step(p.data, d_p, buf, lr, momentum, dampening,
                                                            weight_decay, nesterov, first)

    def _all_params(self):
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self) -> dict:
        """{"state": {index: {"momentum_buffer": ndarray}}, "param_groups": [{hyper-params, "params": [index]}]}.

        Indices count the parameters over all groups in order, as in PyTorch; buffers are NumPy copies.
        """
        state, groups, index = {}, [], 0
        for group in self.param_groups:
            indices = []
            for p in group["params"]:
                buf = self.state.get(id(p), {}).get("momentum_buffer")
                if buf is not None:
                    state[index] = {"momentum_buffer": to_numpy(buf).copy()}
                indices.append(index)
                index += 1
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": indices})
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what `state_dict()` returned, onto an optimiser built over the same parameters.

        Everything is checked before anything changes: a malformed state dict is a ValueError or TypeError
        that says what is wrong, and leaves the optimiser as it was."""
        where = "SGD.load_state_dict"
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            got = f"keys {sorted(map(str, state_dict))}" if isinstance(state_dict, dict) else \
                type(state_dict).__name__
            raise TypeError(f"{where}: expected what SGD.state_dict() returns, a dict with 'state' and "
                            f"'param_groups'; got {got}")
        groups, states = state_dict["param_groups"], state_dict["state"]
        if not isinstance(groups, (list, tuple)) or not all(isinstance(g, dict) and "params" in g for g in groups):
            raise TypeError(f"{where}: 'param_groups' must be a list of dicts, each with a 'params' list; got "
                            f"{_short(groups)}")
        if not isinstance(states, dict):
            raise TypeError(f"{where}: 'state' must be a dict {{parameter index: {{'momentum_buffer': array}}}}; "
                            f"got {type(states).__name__}")
        if len(groups) != len(self.param_groups):
            raise ValueError(f"the saved optimiser has {len(groups)} parameter groups but this one has "
                             f"{len(self.param_groups)}")
        for i, (saved, group) in enumerate(zip(groups, self.param_groups)):
            if not hasattr(saved["params"], "__len__"):
                raise TypeError(f"{where}: parameter group {i}'s 'params' must be a list of indices; got "
                                f"{_short(saved['params'])}")
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"parameter group {i}: the saved optimiser has {len(saved['params'])} "
                                 f"parameters but this one has {len(group['params'])}")
            _check_hyper_parameters({**group, **saved}, where=f"{where}: saved parameter group {i}")
        params = self._all_params()
        state = {}
        for key, saved in states.items():
            try:
                index = int(key)  # JSON-like checkpoints may have turned the keys into strings
            except (TypeError, ValueError):
                index = None
            if index is None or isinstance(key, (bool, float)) or not 0 <= index < len(params):
                raise ValueError(f"{where}: 'state' key {key!r} is not a parameter index in [0, {len(params)})")
            if not isinstance(saved, dict) or "momentum_buffer" not in saved:
                raise ValueError(f"{where}: the state of parameter {index} must be a dict with a 'momentum_buffer'; "
                                 f"got {_short(saved)}")
            p = params[index]
            buf = saved["momentum_buffer"]
            buf = to_numpy(buf.data if _is_tensor(buf) else buf)
            buf = np.asarray(buf) if hasattr(buf, "shape") else None
            if buf is None or buf.dtype.kind not in "biuf":
                raise TypeError(f"{where}: momentum buffer {index} must be an array of numbers; got "
                                f"{_short(saved['momentum_buffer'])}")
            if buf.shape != p.data.shape:
                raise ValueError(f"momentum buffer {index} has shape {buf.shape} but its parameter has shape "
                                 f"{tuple(p.data.shape)}")
            xp = get_array_module(p.data)
            state[id(p)] = {"momentum_buffer": xp.asarray(buf, dtype=p.data.dtype).copy()}
        self.state = state
        for saved, group in zip(groups, self.param_groups):
            for key, value in saved.items():
                if key != "params":
                    group[key] = value

    def __repr__(self):
        lines = [f"  group {i}: {len(g['params'])} params, " +
                 ", ".join(f"{k}={g[k]}" for k in HYPER_PARAMETERS) for i, g in enumerate(self.param_groups)]
        return "SGD(\n" + "\n".join(lines) + "\n)"


def _is_tensor(x) -> bool:
    """Anything Tensor-like: an array in `.data` and a `.grad` slot (Tensor, nn.Parameter)."""
    return hasattr(x, "data") and hasattr(x, "grad") and hasattr(x.data, "shape")


def _short(value) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _check_hyper_parameters(h: dict, where: str) -> None:
    # NaN and infinity pass `< 0` (torch lets them through): every weight would become NaN at the first step
    for key in ("lr", "momentum", "dampening", "weight_decay"):
        value = h[key]
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"{where}: {key} must be a finite number{' >= 0' if key != 'dampening' else ''}; "
                             f"got {value!r}")
    if h["lr"] < 0:
        raise ValueError(f"{where}: lr must be a number >= 0; got {h['lr']!r}")
    if h["momentum"] < 0:
        raise ValueError(f"{where}: momentum must be >= 0; got {h['momentum']!r}")
    if h["weight_decay"] < 0:
        raise ValueError(f"{where}: weight_decay must be >= 0; got {h['weight_decay']!r}")
    if h["nesterov"] and (h["momentum"] <= 0 or h["dampening"] != 0):
        raise ValueError(f"{where}: nesterov=True needs momentum > 0 and dampening = 0; got momentum="
                         f"{h['momentum']!r}, dampening={h['dampening']!r}")
