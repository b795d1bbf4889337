"""Reverse-mode automatic differentiation: Function, the backward engine, grad modes, gradcheck."""

from minipsp.autograd.function import Context, Function
from minipsp.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad
from minipsp.autograd.gradcheck import GradcheckError, gradcheck

__all__ = ["Context", "Function", "GradcheckError", "enable_grad", "gradcheck", "is_grad_enabled", "no_grad"]
