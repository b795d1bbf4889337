"""batch_norm: training (batch statistics, running-statistics update) and eval (running statistics).

Four layers of evidence:
  gradcheck     minipsp.gradcheck (float64, central differences) on Hypothesis-drawn shapes, training
                and eval, with and without weight/bias, for the reference and cpu variants;
  conformance   cpu == reference and cuda (Numba's simulator, tiny shapes) == reference, all four
                kernel functions, forward and backward;
  parity        torch.nn.functional.batch_norm on the same inputs: output, every input gradient, and
                the running statistics it updates in place;
  errors        bad arguments raise an error naming the argument and what it got.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import minipsp
import minipsp.nn.functional as F
from minipsp import kernels
from tests.strategies import seeds

CPU_VARIANTS = ["reference", "cpu"]
TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}
KERNEL_TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


@st.composite
def bn_shapes(draw, max_n=3, max_c=3, max_side=4, training=True):
    """(N, C), (N, C, L) or (N, C, H, W), with more than one value per channel when training."""
    ndim = draw(st.sampled_from([2, 3, 4]))
    shape = (draw(st.integers(1, max_n)), draw(st.integers(1, max_c)))
    shape += tuple(draw(st.integers(1, max_side)) for _ in range(ndim - 2))
    if training and np.prod(shape) // shape[1] < 2:
        shape = (shape[0] + 1,) + shape[1:]
    return shape


def make_inputs(shape, seed, dtype=np.float64):
    """x, weight, bias, running_mean, running_var (var > 0), dy as arrays of dtype."""
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = rng.normal(0.5, 2.0, size=shape)
    weight, bias = rng.normal(size=C), rng.normal(size=C)
    running_mean, running_var = rng.normal(size=C), rng.uniform(0.5, 2.0, size=C)
    dy = rng.normal(size=shape)
    return [a.astype(dtype) for a in (x, weight, bias, running_mean, running_var, dy)]


def assert_close(actual, expected, rtol, atol, what=""):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    error = np.abs(actual - expected) - (atol + rtol * np.abs(expected))
    if error.size and error.max() > 0:
        worst = np.unravel_index(np.argmax(error), error.shape)
        raise AssertionError(f"{what}: max excess error at {worst}: {actual[worst]} vs {expected[worst]}")


# -- gradient checks ------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", CPU_VARIANTS)
@given(shape=bn_shapes(), seed=seeds, affine=st.booleans())
def test_batch_norm_training_gradcheck(variant, shape, seed, affine):
    x, w, b, *_ = make_inputs(shape, seed)
    inputs = [minipsp.tensor(x, requires_grad=True)]
    if affine:
        inputs += [minipsp.tensor(w, requires_grad=True), minipsp.tensor(b, requires_grad=True)]
    # Running statistics None: repeated forward calls of the check must not drift them.
    with kernels.use(variant):
        assert minipsp.gradcheck(lambda *t: F.batch_norm(t[0], None, None, *t[1:], training=True), inputs,
                                 atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("variant", CPU_VARIANTS)
@given(shape=bn_shapes(training=False), seed=seeds, affine=st.booleans())
def test_batch_norm_eval_gradcheck(variant, shape, seed, affine):
    x, w, b, rm, rv, _ = make_inputs(shape, seed)
    inputs = [minipsp.tensor(x, requires_grad=True)]
    if affine:
        inputs += [minipsp.tensor(w, requires_grad=True), minipsp.tensor(b, requires_grad=True)]
    with kernels.use(variant):
        assert minipsp.gradcheck(lambda *t: F.batch_norm(t[0], rm, rv, *t[1:], training=False), inputs,
                                 atol=1e-7, rtol=1e-5)


# -- conformance: every variant against the reference ---------------------------------------------
def kernel_results(module, shape, seed, dtype):
    """All four kernel functions of `module` on the same inputs (x as 4-D)."""
    x, w, b, rm, rv, dy = make_inputs(shape, seed, dtype)
    y, mean, var, rstd = module.batch_norm_forward(x, w, b, 1e-5)
    return {
        "forward": (y, mean, var, rstd),
        "backward": module.batch_norm_backward(dy, x, w, mean, rstd),
        "forward_eval": (module.batch_norm_forward_eval(x, w, b, rm, rv, 1e-5),),
        "backward_eval": module.batch_norm_backward_eval(dy, x, w, rm, rv, 1e-5),
    }


def assert_variant_matches_reference(name, shape, seed, dtype):
    got = kernel_results(kernels.load("batch_norm", name), shape, seed, dtype)
    want = kernel_results(kernels.load("batch_norm", "reference"), shape, seed, dtype)
    for fn in want:
        for i, (a, r) in enumerate(zip(got[fn], want[fn])):
            assert a.dtype == r.dtype == dtype, f"{fn}[{i}] dtype {a.dtype}"
            assert_close(a, r, **KERNEL_TOL[dtype], what=f"{name} {fn}[{i}]")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(shape=bn_shapes(max_n=4, max_c=5, max_side=9).map(lambda s: s + (1,) * (4 - len(s))), seed=seeds)
def test_cpu_matches_reference(dtype, shape, seed):
    assert_variant_matches_reference("cpu", shape, seed, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=3)
@given(shape=bn_shapes(max_n=2, max_c=2, max_side=3).map(lambda s: s + (1,) * (4 - len(s))), seed=seeds)
def test_cuda_simulator_matches_reference(dtype, shape, seed):
    assert_variant_matches_reference("cuda", shape, seed, dtype)


def test_cuda_simulator_reduction_longer_than_a_block():
    # 2 * 5 * 30 = 300 values per channel: the block of 256 threads loops over its channel twice.
    assert_variant_matches_reference("cuda", (2, 1, 5, 30), 0, np.float64)


# -- parity with torch ----------------------------------------------------------------------------
def run_minipsp(x, w, b, rm, rv, dy, training, momentum, affine):
    xt = minipsp.tensor(x, requires_grad=True)
    wt = minipsp.tensor(w, requires_grad=True) if affine else None
    bt = minipsp.tensor(b, requires_grad=True) if affine else None
    rm, rv = rm.copy(), rv.copy()
    y = F.batch_norm(xt, rm, rv, wt, bt, training=training, momentum=momentum)
    y.backward(dy)
    grads = [xt.grad] + ([wt.grad, bt.grad] if affine else [])
    return [y.data, *grads, rm, rv]


def run_torch(x, w, b, rm, rv, dy, training, momentum, affine):
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True) if affine else None
    bt = torch.tensor(b, requires_grad=True) if affine else None
    rm, rv = torch.tensor(rm), torch.tensor(rv)
    y = TF.batch_norm(xt, rm, rv, wt, bt, training=training, momentum=momentum)
    y.backward(torch.tensor(dy))
    grads = [xt.grad] + ([wt.grad, bt.grad] if affine else [])
    return [t.detach().numpy() for t in (y, *grads, rm, rv)]


@pytest.mark.parametrize("variant", CPU_VARIANTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [True, False])
@settings(max_examples=10)
@given(shape=bn_shapes(max_n=4, max_c=4, max_side=6), seed=seeds, affine=st.booleans(),
       momentum=st.sampled_from([0.1, 0.0, 1.0, 0.3]))
def test_matches_torch(variant, dtype, training, shape, seed, affine, momentum):
    args = (*make_inputs(shape, seed, dtype), training, momentum, affine)
    names = ["y", "dx"] + (["dweight", "dbias"] if affine else []) + ["running_mean", "running_var"]
    with kernels.use(variant):
        ours = run_minipsp(*args)
    for name, a, t in zip(names, ours, run_torch(*args)):
        assert a.dtype == dtype, f"{name} dtype {a.dtype}"
        assert_close(a, t, **TOL[dtype], what=name)


def test_pspnet_sized_channels_match_torch():
    # 2 x 64 x 17 x 17, float32: more values per channel than the small Hypothesis shapes.
    args = (*make_inputs((2, 64, 17, 17), 7, np.float32), True, 0.1, True)
    for name, a, t in zip(["y", "dx", "dweight", "dbias", "rm", "rv"], run_minipsp(*args), run_torch(*args)):
        assert_close(a, t, **TOL[np.float32], what=name)


@pytest.mark.parametrize("variant", CPU_VARIANTS)
@pytest.mark.parametrize("training", [True, False])
def test_strided_input_and_float64_stats_for_float32_input(variant, training):
    # A channels-last array seen as (N, C, H, W) is not contiguous; float64 running statistics
    # (np.zeros' default) with a float32 input must work too and keep their dtype.
    nhwc = np.random.default_rng(8).normal(size=(2, 4, 5, 3)).astype(np.float32)
    strided = minipsp.tensor(nhwc, requires_grad=True).permute(0, 3, 1, 2)
    assert not strided.data.flags.c_contiguous
    contiguous = minipsp.tensor(np.ascontiguousarray(strided.data), requires_grad=True)
    dy = np.random.default_rng(9).normal(size=contiguous.shape).astype(np.float32)
    outputs, stats = [], []
    with kernels.use(variant):
        for x in (strided, contiguous):
            rm, rv = np.zeros(3), np.ones(3)
            y = F.batch_norm(x, rm, rv, training=training)
            y.backward(dy)
            outputs.append(y.data)
            stats.append((rm, rv))
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-6, atol=1e-6)
    leaf = strided._node.parents[0][1]
    np.testing.assert_allclose(leaf.grad.transpose(0, 3, 1, 2), contiguous.grad, rtol=1e-6, atol=1e-6)
    assert stats[0][0].dtype == np.float64
    np.testing.assert_allclose(stats[0], stats[1], rtol=1e-7)


# -- running statistics ---------------------------------------------------------------------------
def test_running_stats_tensors_are_updated_in_place():
    x, *_ = make_inputs((4, 3, 5, 5), 0, np.float32)
    running_mean, running_var = minipsp.zeros(3), minipsp.ones(3)
    mean_array, var_array = running_mean.data, running_var.data
    F.batch_norm(minipsp.tensor(x), running_mean, running_var, training=True, momentum=0.5)
    assert running_mean.data is mean_array and running_var.data is var_array
    M = 4 * 5 * 5
    np.testing.assert_allclose(mean_array, 0.5 * x.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(var_array, 0.5 + 0.5 * x.var(axis=(0, 2, 3)) * M / (M - 1), rtol=1e-5)


def test_eval_leaves_running_stats_alone_and_none_updates_nothing():
    x, w, b, rm, rv, _ = make_inputs((2, 3, 4, 4), 1)
    rm0, rv0 = rm.copy(), rv.copy()
    F.batch_norm(minipsp.tensor(x), rm, rv, minipsp.tensor(w), minipsp.tensor(b), training=False)
    np.testing.assert_array_equal(rm, rm0)
    np.testing.assert_array_equal(rv, rv0)
    y = F.batch_norm(minipsp.tensor(x), None, None, training=True)
    np.testing.assert_allclose(y.data.mean(axis=(0, 2, 3)), 0, atol=1e-12)


def test_eval_with_batch_like_running_stats_equals_training_forward():
    # Eval normalises with whatever statistics it is given: give it the batch's (biased) ones.
    x, *_ = make_inputs((3, 2, 4, 4), 2)
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    y_train = F.batch_norm(minipsp.tensor(x), None, None, training=True)
    y_eval = F.batch_norm(minipsp.tensor(x), mean, var, training=False)
    np.testing.assert_allclose(y_eval.data, y_train.data, rtol=1e-12, atol=1e-12)


# -- bad input ------------------------------------------------------------------------------------
def test_bad_inputs_name_the_argument():
    x = minipsp.randn(2, 3, 4, 4)
    C3 = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"input must be 2-D .* got shape \(2, 3, 4, 4, 1\)"):
        F.batch_norm(minipsp.randn(2, 3, 4, 4, 1), C3, C3)
    with pytest.raises(ValueError, match=r"got shape \(3,\)"):
        F.batch_norm(minipsp.randn(3), C3, C3)
    with pytest.raises(ValueError, match=r"running_mean must have shape \(3,\) .* got \(4,\)"):
        F.batch_norm(x, np.zeros(4, np.float32), C3)
    with pytest.raises(ValueError, match=r"running_var must have shape \(3,\) .* got \(3, 1\)"):
        F.batch_norm(x, C3, np.ones((3, 1), np.float32))
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\) .* got \(2,\)"):
        F.batch_norm(x, C3, C3, weight=minipsp.ones(2))
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\) .* got \(3, 3\)"):
        F.batch_norm(x, C3, C3, bias=minipsp.zeros(3, 3))
    with pytest.raises(TypeError, match="weight must be a Tensor or None; got ndarray"):
        F.batch_norm(x, C3, C3, weight=np.ones(3))
    with pytest.raises(TypeError, match="running_mean must be a Tensor, a NumPy/CuPy array or None; got list"):
        F.batch_norm(x, [0.0, 0.0, 0.0], C3)
    with pytest.raises(TypeError, match="input must be a Tensor; got ndarray"):
        F.batch_norm(np.zeros((2, 3)), C3, C3)
    with pytest.raises(ValueError, match="running_mean and running_var must be given in evaluation mode"):
        F.batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match=r"momentum must be a number in \[0, 1\]; got None"):
        F.batch_norm(x, C3, C3, training=True, momentum=None)
    with pytest.raises(ValueError, match=r"momentum must be a number in \[0, 1\]; got 1.5"):
        F.batch_norm(x, C3, C3, training=True, momentum=1.5)
    with pytest.raises(ValueError, match="eps must be positive; got 0"):
        F.batch_norm(x, C3, C3, eps=0)


@pytest.mark.parametrize("shape", [(1, 3), (1, 3, 1, 1), (1, 3, 1)])
def test_training_needs_more_than_one_value_per_channel(shape):
    with pytest.raises(ValueError, match=r"Expected more than 1 value per channel when training, got input size"):
        F.batch_norm(minipsp.randn(*shape), None, None, training=True)
    # eval is fine with a single value (torch agrees)
    F.batch_norm(minipsp.randn(*shape), np.zeros(3, np.float32), np.ones(3, np.float32), training=False)


# -- real GPU (skipped without one: MINIPSP_REAL_GPU=1 pytest -m gpu) -------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_kernels_match_reference(dtype):
    import cupy

    cuda = kernels.load("batch_norm", "cuda")
    reference = kernels.load("batch_norm", "reference")
    x, w, b, rm, rv, dy = make_inputs((4, 16, 33, 35), 3, dtype)
    gx, gw, gb, grm, grv, gdy = (cupy.asarray(a) for a in (x, w, b, rm, rv, dy))
    y, mean, var, rstd = cuda.batch_norm_forward(gx, gw, gb, 1e-5)
    for a, r in zip((y, mean, var, rstd), reference.batch_norm_forward(x, w, b, 1e-5)):
        assert_close(cupy.asnumpy(a), r, **KERNEL_TOL[dtype], what="forward")
    mean_np, rstd_np = cupy.asnumpy(mean), cupy.asnumpy(rstd)
    for a, r in zip(cuda.batch_norm_backward(gdy, gx, gw, mean, rstd),
                    reference.batch_norm_backward(dy, x, w, mean_np, rstd_np)):
        assert_close(cupy.asnumpy(a), r, **KERNEL_TOL[dtype], what="backward")
    assert_close(cupy.asnumpy(cuda.batch_norm_forward_eval(gx, gw, gb, grm, grv, 1e-5)),
                 reference.batch_norm_forward_eval(x, w, b, rm, rv, 1e-5), **KERNEL_TOL[dtype], what="eval")
    for a, r in zip(cuda.batch_norm_backward_eval(gdy, gx, gw, grm, grv, 1e-5),
                    reference.batch_norm_backward_eval(dy, x, w, rm, rv, 1e-5)):
        assert_close(cupy.asnumpy(a), r, **KERNEL_TOL[dtype], what="backward_eval")


@pytest.mark.gpu
@pytest.mark.parametrize("training", [True, False])
def test_gpu_gradcheck(training):
    import cupy

    x, w, b, rm, rv, _ = make_inputs((3, 2, 3, 4), 4)
    inputs = [minipsp.tensor(a, requires_grad=True).to("cuda") for a in (x, w, b)]
    inputs = [t.detach().requires_grad_() for t in inputs]
    rm, rv = cupy.asarray(rm), cupy.asarray(rv)
    stats = (None, None) if training else (rm, rv)
    assert minipsp.gradcheck(lambda *t: F.batch_norm(t[0], *stats, t[1], t[2], training=training), inputs,
                             atol=1e-7, rtol=1e-5)
