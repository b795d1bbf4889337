"""Composed expressions: values and gradients equal torch autograd's on the same inputs."""

import numpy as np
import pytest
import torch

import minipsp

EXPRESSIONS = {
    "mlp": lambda x, w, b, m: ((x @ w + b).tanh() * m).sigmoid().mean(),
    "softmax_by_hand": lambda x, w, b, m: ((x @ w).exp() / (x @ w).exp().sum(1, keepdim=True)).log().sum(),
    "norm_by_hand": lambda x, w, b, m: ((x - x.mean(0, keepdim=True)) ** 2).mean(0).sum() + (w * w).sum(),
    "shapes": lambda x, w, b, m: (x.transpose(0, 1).reshape(-1)[2:7] * 3).max() + (b**2).sum(),
    "relu_chain": lambda x, w, b, m: ((x @ w).relu() * m - b / 2.0).sum(),
}


@pytest.mark.parametrize("name", list(EXPRESSIONS))
def test_composed_expressions_match_torch(name):
    rng = np.random.default_rng(0)
    values = [rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3),
              rng.standard_normal((5, 3))]
    ours = [minipsp.tensor(v, requires_grad=True) for v in values]
    theirs = [torch.tensor(v, requires_grad=True) for v in values]
    fn = EXPRESSIONS[name]
    y_ours, y_theirs = fn(*ours), fn(*theirs)
    y_ours.backward()
    y_theirs.backward()
    np.testing.assert_allclose(y_ours.item(), y_theirs.item(), rtol=1e-12)
    for a, b in zip(ours, theirs):
        expected = b.grad.numpy() if b.grad is not None else np.zeros(b.shape)
        got = a.grad if a.grad is not None else np.zeros(a.shape)
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
