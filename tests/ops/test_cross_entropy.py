"""log_softmax, softmax, nll_loss, cross_entropy: gradient checks, kernels vs reference, parity with torch."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from minipsp.kernels.cross_entropy import reference

import minipsp
import minipsp.nn.functional as F
from minipsp import kernels

IGNORE = 255


@st.composite
def loss_cases(draw, max_n=2, max_k=4, max_side=3):
    """(logits shape, ignored: 'none' | 'some' | 'all', weighted: bool, reduction, seed)."""
    N, K = draw(st.integers(1, max_n)), draw(st.integers(1, max_k))
    shape = (N, K) if draw(st.booleans()) else (N, K, draw(st.integers(1, max_side)), draw(st.integers(1, max_side)))
    return (shape, draw(st.sampled_from(["none", "some", "all"])), draw(st.booleans()),
            draw(st.sampled_from(["mean", "sum", "none"])), draw(st.integers(0, 2**16)))


def make_inputs(shape, ignored, weighted, seed, dtype=np.float64):
    """Logits, labels with the requested ignored pixels, and class weights (or None)."""
    rng = np.random.default_rng(seed)
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    target = rng.integers(0, shape[1], (shape[0],) + shape[2:])
    if ignored == "some":
        target[rng.random(target.shape) < 0.4] = IGNORE
        target.reshape(-1)[0] = IGNORE  # at least one ignored, and one kept if there are two pixels
        target.reshape(-1)[-1] = target.size > 1 and rng.integers(0, shape[1])
    elif ignored == "all":
        target[...] = IGNORE
    weight = rng.uniform(0.2, 2.0, shape[1]).astype(dtype) if weighted else None
    return x, target, weight


def torch_loss(name, x, target, weight, reduction, dy):
    """torch's loss and input gradient (nll_loss gets torch's own log_softmax first)."""
    xt = torch.tensor(x, requires_grad=True)
    wt = None if weight is None else torch.tensor(weight)
    inner = xt if name == "cross_entropy" else torch.log_softmax(xt, 1)
    loss = getattr(torch.nn.functional, name)(inner, torch.tensor(target), weight=wt, ignore_index=IGNORE,
                                              reduction=reduction)
    loss.backward(torch.tensor(dy))
    return loss.detach().numpy(), xt.grad.numpy()


def our_loss(name, x, target, weight, reduction, dy):
    X = minipsp.tensor(x, requires_grad=True)
    inner = X if name == "cross_entropy" else F.log_softmax(X, 1)
    loss = getattr(F, name)(inner, target, weight=weight, ignore_index=IGNORE, reduction=reduction)
    loss.backward(dy)
    return loss.numpy(), X.grad


# -- gradient checks -------------------------------------------------------------------------
@given(loss_cases(), st.sampled_from(["cross_entropy", "nll_loss"]), st.sampled_from(["reference", "cpu"]))
def test_loss_gradcheck(case, name, variant):
    shape, ignored, weighted, reduction, seed = case
    x, target, weight = make_inputs(shape, ignored, weighted, seed)
    X = minipsp.tensor(x, requires_grad=True)

    def loss(t):
        inner = t if name == "cross_entropy" else F.log_softmax(t, 1)
        return getattr(F, name)(inner, target, weight=weight, reduction=reduction)

    with kernels.use(variant):
        assert minipsp.gradcheck(loss, [X])


@given(st.lists(st.integers(1, 3), min_size=1, max_size=4), st.data(), st.sampled_from(["reference", "cpu"]))
def test_softmax_gradcheck(shape, data, variant):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = minipsp.tensor(np.random.default_rng(len(shape)).standard_normal(shape), requires_grad=True)
    with kernels.use(variant):
        assert minipsp.gradcheck(lambda t: F.log_softmax(t, dim), [x])
        assert minipsp.gradcheck(lambda t: F.softmax(t, dim), [x])


# -- parity with torch -----------------------------------------------------------------------
@given(loss_cases(max_n=3, max_k=6, max_side=6), st.sampled_from(["cross_entropy", "nll_loss"]),
       st.sampled_from([np.float32, np.float64]))
def test_matches_torch(case, name, dtype):
    shape, ignored, weighted, reduction, seed = case
    x, target, weight = make_inputs(shape, ignored, weighted, seed, dtype)
    dy = np.asarray(np.random.default_rng(seed + 1).standard_normal(
        target.shape if reduction == "none" else ()), dtype=dtype)
    loss, dx = our_loss(name, x, target, weight, reduction, dy)
    loss_torch, dx_torch = torch_loss(name, x, target, weight, reduction, dy)
    if np.all(target == IGNORE) and reduction == "mean":
        # torch divides 0 by 0 here; we deliberately return 0 and a zero gradient.
        assert np.isnan(loss_torch)
        assert loss == 0 and not np.any(dx)
        return
    tol = dict(rtol=1e-4, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(loss, loss_torch, **tol)
    np.testing.assert_allclose(dx, dx_torch, **tol)


@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.data(), st.sampled_from([np.float32, np.float64]))
def test_softmax_matches_torch(shape, data, dtype):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    rng = np.random.default_rng(len(shape))
    x, dy = (10 * rng.standard_normal(shape)).astype(dtype), rng.standard_normal(shape).astype(dtype)
    tol = dict(rtol=1e-4, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for name in ("softmax", "log_softmax"):
        X, xt = minipsp.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y, yt = getattr(F, name)(X, dim), getattr(torch, name)(xt, dim)
        y.backward(dy)
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), **tol)
        np.testing.assert_allclose(X.grad, xt.grad.numpy(), **tol)


def test_log_softmax_is_stable_for_huge_logits():
    x = np.array([[1000.0, 0.0, -1000.0]], dtype=np.float32)
    y = F.log_softmax(minipsp.tensor(x)).numpy()
    np.testing.assert_allclose(y, torch.log_softmax(torch.tensor(x), 1).numpy())
    assert np.all(np.isfinite(y))


def test_targets_may_be_tensors_or_arrays_of_any_integer_type():
    x, target, _ = make_inputs((2, 4, 3, 3), "some", False, 0)
    expected = F.cross_entropy(minipsp.tensor(x), target).item()
    for t in (minipsp.tensor(target), target.astype(np.uint8), target.astype(np.int32)):
        assert F.cross_entropy(minipsp.tensor(x), t).item() == pytest.approx(expected, rel=1e-12)


# -- label smoothing -------------------------------------------------------------------------
smoothing = st.sampled_from([0.05, 0.3, 1.0])


@given(loss_cases(), smoothing)
def test_label_smoothing_gradcheck(case, eps):
    shape, ignored, weighted, reduction, seed = case
    x, target, weight = make_inputs(shape, ignored, weighted, seed)
    X = minipsp.tensor(x, requires_grad=True)
    assert minipsp.gradcheck(lambda t: F.cross_entropy(t, target, weight=weight, reduction=reduction,
                                                       label_smoothing=eps), [X])


@given(loss_cases(max_n=3, max_k=6, max_side=4), smoothing, st.sampled_from([np.float32, np.float64]))
def test_label_smoothing_matches_torch(case, eps, dtype):
    """Ignored pixels and class weights interplay as in torch: both terms divided by the kept pixels' w[t]."""
    shape, ignored, weighted, reduction, seed = case
    x, target, weight = make_inputs(shape, ignored, weighted, seed, dtype)
    dy = np.asarray(np.random.default_rng(seed + 1).standard_normal(
        target.shape if reduction == "none" else ()), dtype=dtype)
    X, xt = minipsp.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    loss = F.cross_entropy(X, target, weight=weight, reduction=reduction, label_smoothing=eps)
    loss_torch = torch.nn.functional.cross_entropy(xt, torch.tensor(target), None if weight is None else
                                                   torch.tensor(weight), ignore_index=IGNORE, reduction=reduction,
                                                   label_smoothing=eps)
    loss.backward(dy)
    loss_torch.backward(torch.tensor(dy))
    if np.all(target == IGNORE) and reduction == "mean":  # torch: 0 / 0; ours: 0 and a zero gradient
        assert np.isnan(loss_torch.item()) and loss.item() == 0 and not np.any(X.grad)
        return
    tol = dict(rtol=1e-4, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(loss.numpy(), loss_torch.detach().numpy(), **tol)
    np.testing.assert_allclose(X.grad, xt.grad.numpy(), **tol)


# -- kernels: cpu and cuda (simulator) vs the reference --------------------------------------
def check_variant_matches_reference(name, shape, ignored, weighted, dtype, seed):
    k = kernels.load("cross_entropy", name)
    x, target, weight = make_inputs(shape, ignored, True, seed, dtype)
    if not weighted:
        weight = np.ones(shape[1], dtype)
    rng = np.random.default_rng(seed + 1)
    dy, dloss = rng.standard_normal(shape).astype(dtype), rng.standard_normal(target.shape).astype(dtype)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    y = reference.log_softmax_forward(x)
    np.testing.assert_allclose(k.log_softmax_forward(x), y, **tol)
    np.testing.assert_allclose(k.log_softmax_backward(dy, y), reference.log_softmax_backward(dy, y), **tol)
    for ours, theirs in zip(k.nll_loss_forward(y, target, weight, IGNORE),
                            reference.nll_loss_forward(y, target, weight, IGNORE)):
        np.testing.assert_allclose(ours, theirs, **tol)
    np.testing.assert_allclose(k.nll_loss_backward(dloss, target, weight, IGNORE, shape[1]),
                               reference.nll_loss_backward(dloss, target, weight, IGNORE, shape[1]), **tol)
    expected = reference.cross_entropy_forward(x, target, weight, IGNORE)
    for ours, theirs in zip(k.cross_entropy_forward(x, target, weight, IGNORE), expected):
        np.testing.assert_allclose(ours, theirs, **tol)
    prob = expected[2]
    np.testing.assert_allclose(k.cross_entropy_backward(dloss, prob, target, weight, IGNORE),
                               reference.cross_entropy_backward(dloss, prob, target, weight, IGNORE), **tol)


@given(loss_cases(max_n=3, max_k=6, max_side=40), st.sampled_from([np.float32, np.float64]))
def test_cpu_matches_reference(case, dtype):
    shape, ignored, weighted, _, seed = case
    check_variant_matches_reference("cpu", shape, ignored, weighted, dtype, seed)


def test_cpu_matches_reference_across_chunks():
    # More pixels than one CPU chunk (1024), and a count that does not divide it.
    check_variant_matches_reference("cpu", (2, 5, 37, 61), "some", True, np.float32, 0)


@settings(max_examples=5)
@given(loss_cases(max_n=2, max_k=3, max_side=2))
def test_cuda_simulator_matches_reference(case):
    shape, ignored, weighted, _, seed = case
    check_variant_matches_reference("cuda", shape, ignored, weighted, np.float32, seed)


# -- bad input ---------------------------------------------------------------------------------
def test_bad_inputs_are_refused():
    x = minipsp.zeros(2, 3, 4, 4)
    labels = np.zeros((2, 4, 4), dtype=np.int64)
    with pytest.raises(ValueError, match=r"2-D \(N, K\) or 4-D \(N, K, H, W\); got shape \(2, 3, 4\)"):
        F.cross_entropy(minipsp.zeros(2, 3, 4), labels[:, 0])
    with pytest.raises(ValueError, match=r"batch sizes differ: input has 2 .* target has 3"):
        F.cross_entropy(x, np.zeros((3, 4, 4), dtype=np.int64))
    with pytest.raises(ValueError, match=r"target shape \(2, 4, 5\) does not match .* expected \(2, 4, 4\)"):
        F.cross_entropy(x, np.zeros((2, 4, 5), dtype=np.int64))
    with pytest.raises(TypeError, match="target must hold integer class labels; got dtype float32"):
        F.cross_entropy(x, labels.astype(np.float32))
    with pytest.raises(TypeError, match="target must be a Tensor or an integer array; got list"):
        F.cross_entropy(x, labels.tolist())
    with pytest.raises(ValueError, match="weight must have shape \\(3,\\), one per class; got \\(4,\\)"):
        F.cross_entropy(x, labels, weight=np.ones(4))
    with pytest.raises(ValueError, match="reduction must be one of .*got 'average'"):
        F.cross_entropy(x, labels, reduction="average")
    with pytest.raises(TypeError, match="input must be floating point"):
        F.nll_loss(minipsp.tensor(np.zeros((2, 3), dtype=np.int64)), labels[:, 0, 0])


@pytest.mark.parametrize("bad", [3, 7, -1, 254])
def test_labels_out_of_range_are_named(bad):
    labels = np.zeros((2, 4, 4), dtype=np.int64)
    labels[1, 2, 3] = bad
    for loss in (F.cross_entropy, F.nll_loss):
        with pytest.raises(ValueError, match=f"label {bad}, outside \\[0, 3\\) for K=3 classes"):
            loss(minipsp.zeros(2, 3, 4, 4), labels)


def test_ignore_index_can_be_changed():
    x, target, _ = make_inputs((2, 3, 2, 2), "none", False, 1)
    target[0, 0, 0] = -100
    ours = F.cross_entropy(minipsp.tensor(x), target, ignore_index=-100).item()
    theirs = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(target)).item()
    assert ours == pytest.approx(theirs, rel=1e-12)


# -- real GPU (skipped without one) -----------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("weighted", [False, True])
def test_gpu_kernels_match_reference(weighted):
    import cupy

    k = kernels.load("cross_entropy", "cuda")
    x, target, weight = make_inputs((2, 21, 33, 35), "some", True, 0, np.float32)
    weight = weight if weighted else np.ones(21, np.float32)
    dloss = np.random.default_rng(1).standard_normal(target.shape).astype(np.float32)
    tol = dict(rtol=1e-5, atol=1e-6)
    g = cupy.asarray
    y = reference.log_softmax_forward(x)
    np.testing.assert_allclose(cupy.asnumpy(k.log_softmax_forward(g(x))), y, **tol)
    np.testing.assert_allclose(cupy.asnumpy(k.log_softmax_backward(g(x), g(y))),
                               reference.log_softmax_backward(x, y), **tol)
    for ours, theirs in zip(k.nll_loss_forward(g(y), g(target), g(weight), IGNORE),
                            reference.nll_loss_forward(y, target, weight, IGNORE)):
        np.testing.assert_allclose(cupy.asnumpy(ours), theirs, **tol)
    np.testing.assert_allclose(cupy.asnumpy(k.nll_loss_backward(g(dloss), g(target), g(weight), IGNORE, 21)),
                               reference.nll_loss_backward(dloss, target, weight, IGNORE, 21), **tol)
    expected = reference.cross_entropy_forward(x, target, weight, IGNORE)
    for ours, theirs in zip(k.cross_entropy_forward(g(x), g(target), g(weight), IGNORE), expected):
        np.testing.assert_allclose(cupy.asnumpy(ours), theirs, **tol)
    np.testing.assert_allclose(
        cupy.asnumpy(k.cross_entropy_backward(g(dloss), g(expected[2]), g(target), g(weight), IGNORE)),
        reference.cross_entropy_backward(dloss, expected[2], target, weight, IGNORE), **tol)


@pytest.mark.gpu
@pytest.mark.parametrize("ignored", ["none", "some", "all"])
def test_gpu_gradcheck(ignored):
    import cupy

    x, target, weight = make_inputs((2, 3, 2, 3), ignored, True, 0)
    X = minipsp.tensor(x).to("cuda").requires_grad_()
    assert minipsp.gradcheck(lambda t: F.cross_entropy(t, cupy.asarray(target), weight=cupy.asarray(weight)), [X])
    assert minipsp.gradcheck(lambda t: F.nll_loss(F.log_softmax(t), cupy.asarray(target)), [X])
