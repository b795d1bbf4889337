"""Reference solutions of chapter 01's exercises (autograd)."""


def topological_order(root):
    """1.1: every Value reachable from `root`, each after all the Values it was computed from."""
    order, visited = [], set()

    def visit(v):  # recursive for clarity; minipsp's engine uses an explicit stack (deep graphs)
        if id(v) in visited:
            return
        visited.add(id(v))
        for parent in v._parents:
            visit(parent)
        order.append(v)  # after its parents

    visit(root)
    return order


def backward(root):
    """1.2: fill `.grad` of every Value in root's graph with d(root)/d(value)."""
    root.grad = 1.0
    for v in reversed(topological_order(root)):  # a node's grad is complete before it passes it on
        for parent, local in zip(v._parents, v._local_grads):
            parent.grad += local * v.grad  # +=: a parent used twice receives both contributions


def linear_backward(x, W, dy):
    """1.3: gradients of y = x @ W + b; x (N, in), W (in, out), dy (N, out)."""
    dx = dy @ W.T  # (N, in)
    dW = x.T @ dy  # (in, out)
    db = dy.sum(axis=0)  # (out,): b was broadcast to every one of the N rows
    return dx, dW, db
