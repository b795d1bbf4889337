"""Reverse-mode differentiation: walk the recorded graph once, from the output back to the leaves.

1. Order the nodes topologically with an iterative depth-first search (a recursive one hits
   Python's recursion limit on a ResNet-101).
2. Visit them in reverse: each node's Function.backward turns dL/d(output) into dL/d(inputs).
3. A tensor used twice receives the sum of both contributions (`+=`), before its own node runs.
4. Leaves that require grad accumulate into `.grad`, as in PyTorch (so call `zero_grad`). A leaf's
   first gradient is taken as it is when nothing else can see it (PyTorch's AccumulateGrad "steals"
   it the same way), else copied: see _unshared.
5. Unless `retain_graph=True`, each node's saved arrays are dropped as soon as it has run.

Two hooks, with torch's names, let data-parallel training (minipsp.nn.parallel) reduce gradients
without a call by the user: a leaf's post-accumulate-grad hooks run as soon as its `.grad` is final
for this backward, and callbacks queued during a backward run once when it has finished.
"""

from __future__ import annotations

import sys

from minipsp.autograd.grad_mode import no_grad
from minipsp.backend import get_array_module

_queued_callbacks = []   # run once at the end of the backward in progress


def register_post_accumulate_grad_hook(tensor, hook):
    """hook(tensor) runs each time backward has accumulated `tensor.grad` (a leaf); returns a handle
    with .remove(). As torch's Tensor.register_post_accumulate_grad_hook."""
    hooks = tensor.__dict__.setdefault("_post_accumulate_grad_hooks", [])
    hooks.append(hook)
    return _RemovableHook(hooks, hook)


def queue_callback(callback):
    """callback() runs once when the backward in progress has finished (torch's
    Variable._execution_engine.queue_callback); DDP waits there for its last gradient buckets."""
    _queued_callbacks.append(callback)


# _unshared's reference counts are those of these interpreters; elsewhere every leaf gradient is copied
_COUNTS_KNOWN = sys.implementation.name == "cpython" and (3, 11) <= sys.version_info[:2] <= (3, 13)


def _unshared(array):
    """True when no Python reference but the caller's one variable holds `array` or its memory: then a
    leaf may keep it as its `.grad` with no copy, and a later in-place update of that `.grad` (an
    optimizer's, the user's) changes nothing else. Anything that could alias it, another parent's
    gradient that is the same array (add's backward gives dy to both inputs), the root's gradient that
    the caller passed in, another view of the same memory, holds a reference, and the array is copied.
    A read-only array (np.broadcast_to's) is copied too, so that `.grad` can be updated in place.
    A view is common (kernels return `dx.reshape(x.shape)`); it is unshared when it spans its base,
    which owns the memory and is held by nothing but the view. Copying every leaf's gradient cost 5-7 ms
    of a 50 ms 1x1-conv forward + backward whose input is a leaf (32 MB), 6 of batch norm's 19 ms."""
    # 3: the caller's variable, this function's argument, and getrefcount's own. That count is
    # CPython 3.11-3.13's: 3.10 counts one more (nothing would be kept, which is only slower) and 3.14
    # skips some increments (LOAD_FAST_BORROW), so that an array with a second holder could pass.
    if not _COUNTS_KNOWN or sys.getrefcount(array) > 3:
        return False
    if getattr(getattr(array, "flags", None), "writeable", True) is False:   # (CuPy's flags have none)
        return False
    base = getattr(array, "base", True)
    if base is None:
        return True
    # base: array.base, this variable, getrefcount's argument. A view of part of its base (a slice of
    # a concatenation's gradient) is copied, or the leaf would keep the whole base alive.
    return type(base) is type(array) and base.base is None and base.size == array.size \
        and sys.getrefcount(base) <= 3


class _RemovableHook:
    def __init__(self, hooks, hook):
        self.hooks, self.hook = hooks, hook

    def remove(self):
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


def topological_order(root):
    """Tensors reachable from `root` through recorded nodes, every tensor after its inputs."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        tensor, expanded = stack.pop()
        if expanded:
            order.append(tensor)
            continue
        if id(tensor) in visited:
            continue
        visited.add(id(tensor))
        stack.append((tensor, True))
        if tensor._node is not None:
            for _, parent in tensor._node.parents:
                if id(parent) not in visited:
                    stack.append((parent, False))
    return order


def backward(root, grad=None, retain_graph=False):
    """Accumulate d(root)/d(leaf) * grad into every leaf's `.grad`."""
    if not root.requires_grad:
        raise RuntimeError(
            "backward() called on a tensor that does not require grad and has no graph "
            "(was it computed under no_grad(), or from tensors with requires_grad=False?)"
        )
    xp = get_array_module(root.data)
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward() without a `grad` argument needs a scalar output; got shape {tuple(root.shape)}. "
                "Pass grad= with the output's shape, or reduce the output first (e.g. .sum())."
            )
        grad = xp.ones_like(root.data)
    else:
        grad = grad.data if hasattr(grad, "_node") else xp.asarray(grad, dtype=root.data.dtype)
        if grad.shape != root.data.shape:
            raise ValueError(f"backward(): grad has shape {tuple(grad.shape)} but the output has shape "
                             f"{tuple(root.shape)}; they must match")

    grads = {id(root): grad}
    _queued_callbacks.clear()  # anything left by a backward that failed half-way
    with no_grad():  # backward computes with arrays; nothing here should be recorded
        for tensor in reversed(topological_order(root)):
            dy = grads.pop(id(tensor), None)
            if dy is None:
                continue
            node = tensor._node
            if node is None:  # a leaf
                if tensor.grad is not None:
                    tensor.grad = tensor.grad + dy
                else:
                    tensor.grad = dy if _unshared(dy) else dy.copy()
                del dy
                for hook in tensor.__dict__.get("_post_accumulate_grad_hooks", ()):
                    hook(tensor)
                continue
            if node.ctx.freed:
                raise RuntimeError(
                    f"trying to backward through the graph a second time (through {node.function.__name__}): "
                    "its saved arrays were freed after the first backward. "
                    "Pass retain_graph=True to the first backward() if you need to call it twice."
                )
            dinputs = node.function.backward(node.ctx, dy)
            if not isinstance(dinputs, tuple):
                dinputs = (dinputs,)
            for position, parent in node.parents:
                dparent = dinputs[position]
                if dparent is None:
                    continue
                if dparent.shape != parent.data.shape:
                    raise RuntimeError(
                        f"{node.function.__name__}.backward returned a gradient of shape {tuple(dparent.shape)} "
                        f"for input {position} of shape {tuple(parent.shape)}"
                    )
                dparent = dparent.astype(parent.data.dtype, copy=False)
                key = id(parent)
                grads[key] = dparent if key not in grads else grads[key] + dparent
            dinputs = dparent = None   # (they would count as references to a leaf's gradient: _unshared)
            if not retain_graph:
                node.ctx.saved = ()
                node.ctx.freed = True
        while _queued_callbacks:
            _queued_callbacks.pop(0)()
