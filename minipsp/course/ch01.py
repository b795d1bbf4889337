"""Chapter 01 (autograd): the checks of its exercises, and the scalar `Value` the learner differentiates.

1.1 topological_order(root) for a `Value` graph: every node once, after the nodes it was computed from.
1.2 backward(root): reverse-mode differentiation of a `Value` graph (gradients accumulate).
1.3 linear_backward(x, W, dy): dx, dW, db of y = x @ W + b (db sums over the batch: b is broadcast).
"""

from __future__ import annotations

import math

import numpy as np

from minipsp.course import Mismatch, exercise, expect_close, expect_equal


class Value:
    """A scalar that remembers how it was computed (micrograd style).

    Every operation returns a new Value whose `_parents` are its inputs and whose `_local_grads` are the
    derivatives d(output)/d(parent), one per parent, computed during the forward. A parent may appear
    twice (in `a * a`); backward must then add both contributions.
    """

    def __init__(self, data, parents=(), local_grads=(), op=""):
        self.data = float(data)
        self.grad = 0.0  # dL/d(self), filled in by backward
        self._parents = tuple(parents)
        self._local_grads = tuple(local_grads)
        self._op = op

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0), "+")

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data), "*")

    def __pow__(self, k):  # k: a plain number
        return Value(self.data**k, (self,), (k * self.data ** (k - 1),), f"**{k}")

    def tanh(self):
        t = math.tanh(self.data)
        return Value(t, (self,), (1 - t * t,), "tanh")

    def exp(self):
        e = math.exp(self.data)
        return Value(e, (self,), (e,), "exp")

    __radd__ = __add__
    __rmul__ = __mul__

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-other)

    def __repr__(self):
        return f"Value(data={self.data:.4g}, grad={self.grad:.4g}{', op=' + self._op if self._op else ''})"


# Expressions the checks use: each takes Values (or minipsp Tensors) and returns one of the same kind.
# Each reuses a node, so a wrong order or a forgotten `+=` shows.
EXPRESSIONS = [
    ("a * b + a", lambda a, b: a * b + a, (2.0, -3.0)),
    ("(a * a) * a + a * b", lambda a, b: (a * a) * a + a * b, (1.5, 0.5)),
    ("tanh(a * b + c) * a + b ** 2", lambda a, b, c: (a * b + c).tanh() * a + b**2, (0.7, -1.2, 0.3)),
    ("h = a * b; (h + h.exp()) * (h - c)", lambda a, b, c: (lambda h: (h + h.exp()) * (h - c))(a * b),
     (0.4, 0.9, -0.6)),
]


def _reachable(root):
    seen, stack = {}, [root]
    while stack:
        v = stack.pop()
        if id(v) not in seen:
            seen[id(v)] = v
            stack.extend(v._parents)
    return seen


@exercise("1.1", "the topological order of a graph", solution="topological_order",
          hint="a depth-first search that appends a node after all its parents, with a `visited` set so that "
               "a reused node is appended once")
def check_topological_order(topological_order):
    for text, fn, values in EXPRESSIONS:
        root = fn(*[Value(v) for v in values])
        order = topological_order(root)
        if not isinstance(order, (list, tuple)):
            raise Mismatch(f"topological_order({text}) should return a list of Values, got {type(order).__name__}.")
        ids = [id(v) for v in order]
        if len(ids) != len(set(ids)):
            repeated = next(v for v in order if ids.count(id(v)) > 1)
            raise Mismatch(f"for {text}: {repeated!r} appears {ids.count(id(repeated))} times in the order; every "
                           "node must appear once, even when it is used twice (keep a set of visited nodes).")
        reachable = _reachable(root)
        expect_equal(f"number of nodes in the order of {text}", len(order), len(reachable),
                     hint="the order holds every Value reachable from the root through `_parents`, leaves too")
        position = {id(v): k for k, v in enumerate(order)}
        for v in order:
            for p in v._parents:
                if position.get(id(p), len(order)) > position[id(v)]:
                    raise Mismatch(f"for {text}: {v!r} comes before its parent {p!r}; a node must come after "
                                   "every node it was computed from (append it after visiting its parents).")
        if order[-1] is not root:
            raise Mismatch(f"for {text}: the root should be last, got {order[-1]!r}.")
    return f"orders of {len(EXPRESSIONS)} graphs, each with a reused node: every node once, after its parents"


def _numeric_grads(fn, values, eps=1e-6):
    grads = []
    for k in range(len(values)):
        plus, minus = list(values), list(values)
        plus[k] += eps
        minus[k] -= eps
        grads.append((fn(*map(Value, plus)).data - fn(*map(Value, minus)).data) / (2 * eps))
    return np.array(grads)


def _minipsp_grads(fn, values):
    import minipsp

    leaves = [minipsp.tensor(np.array(v), dtype=np.float64, requires_grad=True) for v in values]
    fn(*leaves).backward()
    return np.array([float(t.grad) for t in leaves])


@exercise("1.2", "backward for the scalar Value", solution="backward",
          hint="root.grad = 1, then for every node in reversed topological order add "
               "local_grad * node.grad to each parent's grad (+=, never =)")
def check_backward(backward):
    for text, fn, values in EXPRESSIONS:
        leaves = [Value(v) for v in values]
        root = fn(*leaves)
        backward(root)
        expect_close(f"root.grad of {text} after backward", root.grad, 1.0,
                     hint="backward starts with dL/dL = 1 at the root")
        where = ", ".join(f"{n}={v}" for n, v in zip("abc", values))
        by_autograd, by_differences = _minipsp_grads(fn, values), _numeric_grads(fn, values)
        for k, (name, leaf) in enumerate(zip("abc", leaves)):  # one message per leaf: "d(...)/da"
            expect_close(f"d({text})/d{name} at {where} (minipsp's autograd)", leaf.grad, by_autograd[k],
                         rtol=1e-9, atol=1e-12)
            expect_close(f"d({text})/d{name} at {where} (central differences)", leaf.grad, by_differences[k],
                         rtol=1e-6, atol=1e-8)
    return f"gradients of {len(EXPRESSIONS)} expressions with reused nodes equal minipsp's and finite differences"


@exercise("1.3", "the gradients of a linear layer (and why db sums over the batch)", solution="linear_backward",
          hint="dx = dy @ W.T, dW = x.T @ dy, and b was copied to every row of the batch, so db adds up the "
               "gradients of all its copies: dy.sum(axis=0)")
def check_linear_backward(linear_backward):
    import minipsp

    rng = np.random.default_rng(3)
    for N, n_in, n_out in [(4, 3, 2), (1, 5, 3), (7, 2, 6)]:
        x, W, b = rng.standard_normal((N, n_in)), rng.standard_normal((n_in, n_out)), rng.standard_normal(n_out)
        dy = rng.standard_normal((N, n_out))
        xt, Wt, bt = (minipsp.tensor(a, requires_grad=True) for a in (x, W, b))
        (xt @ Wt + bt).backward(dy)  # b (n_out,) is broadcast to every row: (N, n_out)
        answer = linear_backward(x, W, dy)
        if not isinstance(answer, (tuple, list)) or len(answer) != 3:
            raise Mismatch(f"linear_backward should return the tuple (dx, dW, db), got {type(answer).__name__}.")
        dx, dW, db = answer
        shapes = f"x {x.shape}, W {W.shape}, dy {dy.shape}"
        expect_close(f"dx for {shapes}", dx, xt.grad, hint="dx = dy @ W.T has the shape of x")
        expect_close(f"dW for {shapes}", dW, Wt.grad, hint="dW = x.T @ dy has the shape of W")
        expect_close(f"db for {shapes}", db, bt.grad,
                     hint="every row of the batch used the same b, so db is the sum of dy over the batch "
                          "(axis 0), not the mean, not one row")
    return "dx, dW, db of x @ W + b for 3 shapes (batch 1, 4, 7) equal minipsp's autograd"
