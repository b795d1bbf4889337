"""Every differentiable Tensor op, gradient-checked in float64 on Hypothesis-drawn shapes."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minipsp
from minipsp import gradcheck
from tests.strategies import arrays, broadcast_pair, seeds, shapes


def leaf(array):
    return minipsp.tensor(np.asarray(array, dtype=np.float64), requires_grad=True)


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a**b,
}


@pytest.mark.parametrize("op", list(BINARY))
@given(pair=broadcast_pair(), seed=seeds)
def test_binary_ops_with_broadcasting(op, pair, seed):
    a_shape, b_shape = pair
    a = arrays(a_shape, seed)
    b = arrays(b_shape, seed + 1)
    if op == "div":
        b = np.where(np.abs(b) < 0.3, 0.3, b)  # keep away from the pole at 0
    if op == "pow":
        a = np.abs(a) + 0.5                    # a real power needs a positive base
    assert gradcheck(BINARY[op], (leaf(a), leaf(b)))


REFLECTED = {
    "radd": lambda a: 2.5 + a,
    "rsub": lambda a: 2.5 - a,
    "rmul": lambda a: 2.5 * a,
    "rtruediv": lambda a: 2.5 / a,
    "rpow": lambda a: 2.5**a,
    "neg": lambda a: -a,
    "pow_scalar": lambda a: a**3,
    "exp": lambda a: a.exp(),
    "log": lambda a: a.log(),
    "relu": lambda a: a.relu(),
    "sigmoid": lambda a: a.sigmoid(),
    "tanh": lambda a: a.tanh(),
}


@pytest.mark.parametrize("op", list(REFLECTED))
@given(shape=shapes(), seed=seeds)
def test_unary_and_reflected_ops(op, shape, seed):
    a = arrays(shape, seed)
    if op in ("log", "rtruediv"):
        a = np.abs(a) + 0.3
    if op == "relu":
        a = np.where(np.abs(a) < 1e-3, 0.5, a)  # relu has a kink at 0
    assert gradcheck(REFLECTED[op], (leaf(a),))


@st.composite
def shape_and_dims(draw):
    shape = draw(shapes(1, 4, 1, 4))
    dims = draw(st.one_of(st.none(), st.lists(st.integers(-len(shape), len(shape) - 1), min_size=1,
                                                   max_size=len(shape), unique_by=lambda d: d % len(shape))))
    if dims is not None and len(dims) == 1 and draw(st.booleans()):
        dims = dims[0]
    return shape, dims


@pytest.mark.parametrize("op", ["sum", "mean", "max"])
@given(case=shape_and_dims(), keepdim=st.booleans(), seed=seeds)
def test_reductions(op, case, keepdim, seed):
    shape, dims = case
    a = np.random.default_rng(seed).permutation(np.prod(shape)).reshape(shape) / 7.0  # no ties for max
    assert gradcheck(lambda t: getattr(t, op)(dim=dims, keepdim=keepdim), (leaf(a),))


@given(batch=st.sampled_from([(), (2,), (3, 1)]), m=st.integers(1, 4), k=st.integers(1, 4), n=st.integers(1, 4),
       seed=seeds)
def test_matmul(batch, m, k, n, seed):
    a = leaf(arrays(batch + (m, k), seed))
    b = leaf(arrays((k, n), seed + 1))
    assert gradcheck(lambda x, y: x @ y, (a, b))
    v = leaf(arrays((k,), seed + 2))
    assert gradcheck(lambda x, y: x @ y, (a, v))   # matrix @ vector
    assert gradcheck(lambda y, x: y @ x, (v, b))   # vector @ matrix


@given(shape=shapes(2, 4, 1, 4), seed=seeds, data=st.data())
def test_reshape_permute_transpose(shape, seed, data):
    a = leaf(arrays(shape, seed))
    order = tuple(data.draw(st.permutations(range(len(shape)))))
    assert gradcheck(lambda t: t.permute(order), (a,))
    assert gradcheck(lambda t: t.transpose(0, -1), (a,))
    assert gradcheck(lambda t: t.reshape(-1), (a,))
    assert gradcheck(lambda t: t.view(shape[0], -1), (a,))


@given(shape=shapes(2, 3, 2, 5), seed=seeds, data=st.data())
def test_slicing(shape, seed, data):
    a = leaf(arrays(shape, seed))
    start = data.draw(st.integers(0, shape[0] - 1))
    step = data.draw(st.integers(1, 2))
    assert gradcheck(lambda t: t[start::step], (a,))
    assert gradcheck(lambda t: t[..., 1:], (a,))
    repeated = [0, 0, shape[0] - 1]  # advanced indexing with a repeated row: both copies send gradient
    assert gradcheck(lambda t: t[repeated], (a,))


@given(shape=shapes(1, 3, 1, 4), n=st.integers(1, 3), seed=seeds, data=st.data())
def test_cat_and_stack(shape, n, seed, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    parts = []
    for i in range(n):
        part_shape = list(shape)
        part_shape[dim] = data.draw(st.integers(1, 3))
        parts.append(leaf(arrays(tuple(part_shape), seed + i)))
    assert gradcheck(lambda *ts: minipsp.cat(ts, dim=dim), parts)
    same = [leaf(arrays(shape, seed + 10 + i)) for i in range(n)]
    stack_dim = data.draw(st.integers(-len(shape) - 1, len(shape)))
    assert gradcheck(lambda *ts: minipsp.stack(ts, dim=stack_dim), same)


def test_gradcheck_catches_a_wrong_backward():
    class WrongSquare(minipsp.Function):
        @staticmethod
        def forward(ctx, a):
            ctx.save_for_backward(a)
            return a * a

        @staticmethod
        def backward(ctx, dy):
            (a,) = ctx.saved
            return (dy * a,)  # should be 2 * a

    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(minipsp.autograd.GradcheckError, match=r"input 0 .*index \(\d, \d\).*analytic .*numeric"):
        gradcheck(WrongSquare.apply, (x,))


def test_gradcheck_refuses_float32():
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda t: t * 2, (minipsp.tensor([1.0, 2.0], requires_grad=True),))
