"""The backward engine on awkward graphs, grad modes, and the errors a user meets."""

import numpy as np
import pytest

import minipsp


def leaf(values):
    return minipsp.tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


def test_tensor_used_twice_accumulates():
    x = leaf([1.0, -2.0, 3.0])
    (x * x + x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 1)


def test_diamond_graph():
    x = leaf([0.5, 1.5])
    a = x.exp()
    b = a * 2
    c = a.tanh()
    (b + c).sum().backward()
    expected = np.exp(x.data) * 2 + (1 - np.tanh(np.exp(x.data)) ** 2) * np.exp(x.data)
    np.testing.assert_allclose(x.grad, expected)


def test_leaf_grads_accumulate_across_backward_calls_until_reset():
    x = leaf([1.0, 2.0])
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad, [6.0, 6.0])
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 3.0])


def test_deep_chain_does_not_hit_the_recursion_limit():
    x = leaf([1.0])
    y = x
    for _ in range(5000):
        y = y * 1.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0])


def test_no_grad_records_nothing():
    x = leaf([1.0, 2.0])
    with minipsp.no_grad():
        y = x * 2
    assert not y.requires_grad and y.is_leaf
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()
    assert minipsp.is_grad_enabled()


def test_no_grad_restores_state_after_an_exception():
    with pytest.raises(ZeroDivisionError), minipsp.no_grad():
        raise ZeroDivisionError
    assert minipsp.is_grad_enabled()


def test_detach_stops_the_gradient():
    x = leaf([1.0, 2.0])
    y = x * x.detach()  # d/dx of x * const
    y.sum().backward()
    np.testing.assert_allclose(x.grad, x.data)


def test_second_backward_without_retain_graph_raises_clearly():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, 4 * x.data)


def test_backward_with_explicit_grad():
    x = leaf([1.0, 2.0, 3.0])
    y = x * 2
    y.backward(np.array([1.0, 0.0, -1.0]))
    np.testing.assert_allclose(x.grad, [2.0, 0.0, -2.0])


def test_backward_on_non_scalar_without_grad_says_so():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"scalar output; got shape \(2,\)"):
        (x * 2).backward()


def test_backward_grad_of_the_wrong_shape_is_refused():
    x = leaf([1.0, 2.0])
    with pytest.raises(ValueError, match=r"grad has shape \(3,\).*\(2,\)"):
        (x * 2).backward(np.ones(3))


def test_mismatched_shapes_name_both_shapes():
    a = leaf(np.ones((2, 3)))
    b = leaf(np.ones((4,)))
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4,\)"):
        a + b
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(2, 3\) do not fit"):
        a @ a


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point.*int64"):
        minipsp.tensor([1, 2, 3], requires_grad=True)
    t = minipsp.tensor([1, 2, 3])
    with pytest.raises(TypeError, match="floating-point"):
        t.requires_grad = True


def test_cat_and_stack_name_the_offending_shapes():
    a, b = minipsp.zeros(2, 3), minipsp.zeros(2, 4)
    with pytest.raises(ValueError, match=r"tensor 1 has shape \(2, 4\)"):
        minipsp.cat([a, b], dim=0)
    assert minipsp.cat([a, b], dim=1).shape == (2, 7)
    with pytest.raises(ValueError, match="same shape"):
        minipsp.stack([a, b])


def test_bad_reduction_dim_and_reshape_are_clear():
    a = minipsp.zeros(2, 3)
    with pytest.raises(ValueError, match="dim 2 is out of range"):
        a.sum(dim=2)
    with pytest.raises(ValueError, match=r"shape \(2, 3\).*\(4,\)"):
        a.reshape(4)


def test_tensor_basics():
    t = minipsp.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert t.dtype == np.float32 and t.shape == (2, 2) and t.ndim == 2 and t.device == "cpu"
    assert minipsp.tensor(np.zeros(3)).dtype == np.float64  # NumPy arrays keep their dtype
    assert minipsp.tensor([1, 2]).dtype == np.int64
    assert t.sum().item() == 10.0
    assert isinstance(t.numpy(), np.ndarray)
    assert (t + 1.0).dtype == np.float32  # a Python float does not promote to float64
    assert t.double().dtype == np.float64
    with pytest.raises(ValueError, match="one-element"):
        t.item()


def test_asking_for_cuda_without_a_gpu_gives_one_clear_error():
    if minipsp.cuda_is_available():
        pytest.skip("this machine has a GPU; the error path is for machines without one")
    with pytest.raises(RuntimeError, match=r"device 'cuda' requested but .*(CuPy|CUDA)"):
        minipsp.tensor([1.0]).to("cuda")
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda'"):
        minipsp.tensor([1.0]).to("tpu")


# ---------------------------------------------------------------- a leaf's first gradient: kept or copied

from minipsp.autograd.function import Function  # noqa: E402


class _Returns(Function):
    """y = 2 x, whose backward returns whatever `made` makes of dy (to test what the engine keeps)."""
    made = None

    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, dy):
        return _Returns.made(dy)


def test_a_leaf_keeps_its_first_gradient_when_nothing_else_sees_it():
    """As PyTorch's AccumulateGrad: a fresh gradient array becomes `.grad` itself, no copy."""
    x = leaf([1.0, 2.0])
    kept = []
    _Returns.made = lambda dy: kept.append(id(fresh := 2 * dy)) or fresh
    _Returns.apply(x).sum().backward()
    assert id(x.grad) == kept[0]
    np.testing.assert_allclose(x.grad, [2.0, 2.0])


def test_a_gradient_held_elsewhere_is_copied():
    """A backward that keeps (or returns again) its gradient array: the leaf must get its own, or an
    in-place update of x.grad would change the kept array too."""
    held = []
    _Returns.made = lambda dy: held.append(2 * dy) or held[-1]
    x = leaf([1.0, 2.0])
    _Returns.apply(x).sum().backward()
    assert x.grad is not held[0]
    x.grad += 1
    np.testing.assert_allclose(held[0], [2.0, 2.0])


def test_shared_gradients_stay_apart():
    x, z = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (x + z).sum().backward()
    x.grad += 1
    np.testing.assert_allclose(z.grad, [1.0, 1.0])
    np.testing.assert_allclose(x.grad, [2.0, 2.0])


def test_the_callers_gradient_is_never_kept():
    x = leaf([1.0, 2.0])
    g = np.array([5.0, 6.0])
    x.backward(g)
    x.grad += 1
    np.testing.assert_allclose(g, [5.0, 6.0])


def test_a_reshaped_gradient_is_kept_unless_its_memory_is_seen_elsewhere():
    """Kernels return dx.reshape(x.shape): a view whose base nothing else holds is kept as it is; a
    view of an array that something else holds (here a list) is copied."""
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    _Returns.made = lambda dy: (2 * dy).reshape(-1).reshape(2, 2)
    _Returns.apply(x).sum().backward()
    assert x.grad.base is not None                        # kept: a copy would own its memory
    held = []
    _Returns.made = lambda dy: (held.append((2 * dy).reshape(-1)) or held[-1]).reshape(2, 2)
    z = leaf([[1.0, 2.0], [3.0, 4.0]])
    _Returns.apply(z).sum().backward()
    z.grad += 1
    np.testing.assert_allclose(held[0], [2.0, 2.0, 2.0, 2.0])
    w = leaf([1.0, 2.0])
    _Returns.made = lambda dy: np.concatenate([2 * dy, 2 * dy])[:2]       # a slice: its base is larger
    _Returns.apply(w).sum().backward()
    assert w.grad.base is None                            # copied: the leaf holds only its own values


def test_a_read_only_gradient_is_copied():
    x = leaf([1.0, 2.0])
    _Returns.made = lambda dy: np.broadcast_to(2 * dy, dy.shape)          # read-only
    _Returns.apply(x).sum().backward()
    x.grad += 1                                                           # must not raise
    np.testing.assert_allclose(x.grad, [3.0, 3.0])


def test_leaf_gradients_are_kept_only_where_the_reference_counts_are_known(monkeypatch):
    """The counts _unshared reads are CPython 3.11-3.13's; elsewhere every first gradient is copied."""
    from minipsp.autograd import engine
    monkeypatch.setattr(engine, "_COUNTS_KNOWN", False)
    x = leaf([1.0, 2.0])
    made = []
    _Returns.made = lambda dy: made.append(id(fresh := 2 * dy)) or fresh   # (an id: no reference kept)
    _Returns.apply(x).sum().backward()
    assert id(x.grad) != made[0]
