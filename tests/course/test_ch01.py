"""Chapter 01's exercises: each check passes the reference solution and rejects plausible mistakes."""

from course_helpers import make_chapter_tests

from minipsp.course.ch01 import EXPRESSIONS, Value
from minipsp.course.solutions import ch01 as solutions


def order_without_visited(root):  # a reused node is appended twice
    order = []

    def visit(v):
        for parent in v._parents:
            visit(parent)
        order.append(v)

    visit(root)
    return order


def order_root_first(root):  # pre-order: a node before its parents
    order, visited = [], set()

    def visit(v):
        if id(v) in visited:
            return
        visited.add(id(v))
        order.append(v)
        for parent in v._parents:
            visit(parent)

    visit(root)
    return order


def order_leaves_forgotten(root):  # only the nodes that have parents
    return [v for v in solutions.topological_order(root) if v._parents]


def backward_assigns(root):  # `=` instead of `+=`: a reused node keeps only its last contribution
    root.grad = 1.0
    for v in reversed(solutions.topological_order(root)):
        for parent, local in zip(v._parents, v._local_grads):
            parent.grad = local * v.grad


def backward_forward_order(root):  # a node passes on its grad before it is complete
    root.grad = 1.0
    for v in solutions.topological_order(root):
        for parent, local in zip(v._parents, v._local_grads):
            parent.grad += local * v.grad


def backward_no_seed(root):  # forgets dL/dL = 1: every gradient stays 0
    for v in reversed(solutions.topological_order(root)):
        for parent, local in zip(v._parents, v._local_grads):
            parent.grad += local * v.grad


def linear_db_mean(x, W, dy):
    return dy @ W.T, x.T @ dy, dy.mean(axis=0)


def linear_db_first_row(x, W, dy):
    return dy @ W.T, x.T @ dy, dy[0]


def linear_dW_transposed(x, W, dy):
    return dy @ W.T, dy.T @ x, dy.sum(axis=0)


MISTAKES = {
    "1.1": [order_without_visited, order_root_first, order_leaves_forgotten],
    "1.2": [backward_assigns, backward_forward_order, backward_no_seed],
    "1.3": [linear_db_mean, linear_db_first_row, linear_dW_transposed],
}

(test_solution_passes, test_mistake_rejected, test_stub_is_not_solved,
 test_chapter_has_exercises_and_mistakes) = make_chapter_tests(1, MISTAKES)


def test_value_local_gradients_match_finite_differences():
    """The Value class the checks rely on: each op's local gradient is its derivative."""
    for _, fn, values in EXPRESSIONS:
        leaves = [Value(v) for v in values]
        solutions.backward(fn(*leaves))
        for k in range(len(values)):
            plus, minus = list(values), list(values)
            plus[k] += 1e-6
            minus[k] -= 1e-6
            numeric = (fn(*map(Value, plus)).data - fn(*map(Value, minus)).data) / 2e-6
            assert abs(leaves[k].grad - numeric) < 1e-6 * max(1.0, abs(numeric))
