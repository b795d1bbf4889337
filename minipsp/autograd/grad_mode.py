"""Turning graph recording off: `with minipsp.no_grad(): ...` (evaluation, optimiser steps)."""

from __future__ import annotations

import contextlib

_enabled = True


def is_grad_enabled() -> bool:
    return _enabled


@contextlib.contextmanager
def _grad_mode(enabled: bool):
    global _enabled
    previous = _enabled
    _enabled = enabled
    try:
        yield
    finally:  # a failing block must not leave recording switched off
        _enabled = previous


def no_grad():
    """Context manager: ops inside record no graph, so nothing can be backpropagated through them."""
    return _grad_mode(False)


def enable_grad():
    """Context manager: record the graph again inside a `no_grad` block."""
    return _grad_mode(True)
