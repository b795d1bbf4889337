"""relu (also in place, and Tensor.relu), dropout and dropout2d.

  gradcheck     minipsp.gradcheck in float64 on Hypothesis-drawn shapes (dropout with its mask fixed
                by reseeding inside the checked function);
  conformance   cpu == reference and cuda (Numba's simulator, tiny shapes) == reference;
  parity        torch on the same inputs (for dropout: the same mask, read off torch's own output);
  behaviour     in-place relu rebases the graph as torch does; dropout is reproducible under
                manual_seed, scales by 1/(1-p), keeps about 1-p, zeroes whole channels in 2d;
  errors        bad arguments raise an error naming the argument.
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
from minipsp.nn.functional.dropout import Dropout, Dropout2d
from tests.strategies import seeds, shapes

CPU_VARIANTS = ["reference", "cpu"]
TOL = {np.float32: dict(rtol=1e-4, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}


def away_from_zero(shape, seed, dtype=np.float64):
    """Values in +-[0.1, 2]: relu's kink at 0 lies far outside gradcheck's eps."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.1, 2.0, shape) * rng.choice([-1.0, 1.0], shape)).astype(dtype)


def with_zeros(shape, seed, dtype):
    """Random values with some exact zeros, where relu's derivative is taken as 0."""
    x = np.random.default_rng(seed).standard_normal(shape)
    x[np.random.default_rng(seed + 1).random(shape) < 0.2] = 0.0
    return x.astype(dtype)


nchw = shapes(min_dims=4, max_dims=4, min_side=1, max_side=3)


# -- relu -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", CPU_VARIANTS)
@given(shape=shapes(1, 4, 1, 3), seed=seeds)
def test_relu_gradcheck(variant, shape, seed):
    x = minipsp.tensor(away_from_zero(shape, seed), requires_grad=True)
    with kernels.use(variant):
        assert minipsp.gradcheck(F.relu, [x], atol=1e-8, rtol=1e-6)
        # in place, on a non-leaf (x * 1), so that the leaf itself is not overwritten
        assert minipsp.gradcheck(lambda t: F.relu(t * 1, inplace=True), [x], atol=1e-8, rtol=1e-6)


def assert_relu_variant_matches_reference(name, shape, seed, dtype):
    module, reference = kernels.load("relu", name), kernels.load("relu", "reference")
    x, dy = with_zeros(shape, seed, dtype), with_zeros(shape, seed + 2, dtype)
    y = reference.relu_forward(x)
    np.testing.assert_array_equal(module.relu_forward(x), y)
    np.testing.assert_array_equal(module.relu_backward(dy, y), reference.relu_backward(dy, y))
    inplace = x.copy()
    assert module.relu_forward(inplace, out=inplace) is inplace
    np.testing.assert_array_equal(inplace, y)
    assert module.relu_forward(x).dtype == module.relu_backward(dy, y).dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(shape=shapes(1, 4, 1, 6), seed=seeds)
def test_relu_cpu_matches_reference(dtype, shape, seed):
    assert_relu_variant_matches_reference("cpu", shape, seed, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=3)
@given(shape=shapes(1, 4, 1, 3), seed=seeds)
def test_relu_cuda_simulator_matches_reference(dtype, shape, seed):
    assert_relu_variant_matches_reference("cuda", shape, seed, dtype)


@pytest.mark.parametrize("variant", CPU_VARIANTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_matches_torch(variant, dtype):
    x, dy = with_zeros((2, 3, 5, 4), 0, dtype), with_zeros((2, 3, 5, 4), 5, dtype)
    x[0, 0, 0, 0] = np.nan  # relu keeps NaN, as torch does
    ours = minipsp.tensor(x, requires_grad=True)
    theirs = torch.tensor(x, requires_grad=True)
    with kernels.use(variant):
        y = F.relu(ours)
        y.backward(dy)
    y_t = TF.relu(theirs)
    y_t.backward(torch.tensor(dy))
    np.testing.assert_array_equal(y.data, y_t.detach().numpy())
    grad_t = theirs.grad.numpy()
    # torch passes dy through at NaN; we do not (NaN > 0 is False). Compare everywhere else.
    grad_t[0, 0, 0, 0] = 0
    np.testing.assert_array_equal(ours.grad, grad_t)


def test_inplace_relu_after_batch_norm_matches_torch():
    # The PSPNet pattern: conv -> batch norm -> relu(inplace=True); batch norm saved its input, not its output.
    rng = np.random.default_rng(0)
    x, w, dy = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal(3), rng.standard_normal((2, 3, 4, 4))
    xs, ws = minipsp.tensor(x, requires_grad=True), minipsp.tensor(w, requires_grad=True)
    h = F.batch_norm(xs, None, None, ws, training=True)
    y = F.relu(h, inplace=True)
    assert y is h and y.data is h.data
    y.backward(dy)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    TF.relu(TF.batch_norm(xt, None, None, wt, training=True), inplace=True).backward(torch.tensor(dy))
    np.testing.assert_allclose(y.data, TF.relu(TF.batch_norm(torch.tensor(x), None, None, torch.tensor(w),
                                                             training=True)).numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xs.grad, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ws.grad, wt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_inplace_relu_on_a_strided_view_and_without_grad():
    base = minipsp.tensor(np.array([[-1.0, 2.0], [3.0, -4.0]]))
    view = base.transpose(0, 1)
    assert F.relu(view, inplace=True) is view
    np.testing.assert_array_equal(base.data, [[0.0, 2.0], [3.0, 0.0]])
    leaf = minipsp.tensor([-1.0, 1.0], requires_grad=True)
    with minipsp.no_grad():  # allowed, as in torch: nothing is recorded
        F.relu(leaf, inplace=True)
    np.testing.assert_array_equal(leaf.data, [0.0, 1.0])


def test_inplace_relu_refuses_what_it_would_corrupt():
    leaf = minipsp.tensor([-1.0, 1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        F.relu(leaf, inplace=True)
    with pytest.raises(RuntimeError, match="output of Exp, which saved it"):
        F.relu(leaf.exp(), inplace=True)
    with pytest.raises(TypeError, match="relu: input must be a Tensor; got ndarray"):
        F.relu(np.zeros(3))


def test_tensor_relu_uses_the_kernel_backed_function():
    import minipsp.ops.arithmetic as A

    assert not hasattr(A, "Relu")
    x = minipsp.tensor(away_from_zero((3, 4), 0), requires_grad=True)
    y = x.relu()
    assert y._node.function is F.activation.ReLU
    assert minipsp.gradcheck(lambda t: t.relu(), [x])


# -- dropout: behaviour ---------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [F.dropout, F.dropout2d])
def test_dropout_is_reproducible_under_manual_seed(fn):
    x = minipsp.randn(4, 8, 3, 3)
    minipsp.manual_seed(123)
    first = fn(x, 0.5).data
    minipsp.manual_seed(123)
    np.testing.assert_array_equal(fn(x, 0.5).data, first)
    assert not np.array_equal(fn(x, 0.5).data, first)  # the generator moved on: a new mask


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_scales_kept_values_and_keeps_about_1_minus_p(dtype, p):
    x = (np.random.default_rng(0).uniform(0.5, 1.5, 200_000)).astype(dtype)  # no zeros in x
    y = F.dropout(minipsp.tensor(x), p).data
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / dtype(1 - p), rtol=1e-6 if dtype == np.float32 else 1e-14)
    sigma = np.sqrt(p * (1 - p) / x.size)
    assert abs(kept.mean() - (1 - p)) < 5 * sigma, f"keep rate {kept.mean()} for p={p}"


def test_dropout2d_zeroes_whole_channels_at_rate_p():
    x = np.random.default_rng(1).uniform(0.5, 1.5, (64, 64, 3, 2)).astype(np.float32)
    y = F.dropout2d(minipsp.tensor(x), 0.3).data
    zero = (y == 0).reshape(64, 64, -1)
    assert np.all(zero.all(axis=2) | ~zero.any(axis=2)), "some channel map is only partly zeroed"
    kept = ~zero[:, :, 0]
    np.testing.assert_allclose(y[kept], x[kept] / np.float32(0.7), rtol=1e-6)
    sigma = np.sqrt(0.3 * 0.7 / kept.size)
    assert abs(kept.mean() - 0.7) < 5 * sigma


@pytest.mark.parametrize("fn", [F.dropout, F.dropout2d])
def test_dropout_gradient_is_mask_times_scale(fn):
    rng = np.random.default_rng(2)
    x = minipsp.tensor(rng.uniform(0.5, 1.5, (3, 5, 4, 4)), requires_grad=True)
    dy = rng.standard_normal((3, 5, 4, 4))
    y = fn(x, 0.25)
    y.backward(dy)
    np.testing.assert_allclose(x.grad, dy * (y.data != 0) / 0.75, rtol=1e-14)


@pytest.mark.parametrize("fn", [F.dropout, F.dropout2d])
def test_dropout_limits_and_eval(fn):
    x = minipsp.tensor(np.random.default_rng(3).standard_normal((2, 3, 4, 4)), requires_grad=True)
    zeros = fn(x, 1.0)
    np.testing.assert_array_equal(zeros.data, 0)
    zeros.sum().backward()
    np.testing.assert_array_equal(x.grad, 0)
    np.testing.assert_array_equal(fn(x, 0.0).data, x.data)
    assert fn(x, 0.5, training=False) is x


@pytest.mark.parametrize("variant", CPU_VARIANTS)
@pytest.mark.parametrize("fn", [F.dropout, F.dropout2d])
@settings(max_examples=10)  # linear in x: few examples suffice, and each draws a mask per forward call
@given(shape=nchw, seed=seeds, p=st.floats(0.0, 0.9))
def test_dropout_gradcheck(variant, fn, shape, seed, p):
    x = minipsp.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)

    def fixed_mask_dropout(t):
        minipsp.manual_seed(seed)  # the same mask on every call of the check
        return fn(t, p)

    with kernels.use(variant):
        assert minipsp.gradcheck(fixed_mask_dropout, [x], atol=1e-8, rtol=1e-6)


# -- dropout: kernels and torch -------------------------------------------------------------------
def assert_dropout_variant_matches_reference(name, shape, seed, dtype, p):
    module, reference = kernels.load("dropout", name), kernels.load("dropout", "reference")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    mask, channel_mask = rng.random(shape) >= p, rng.random(shape[:2]) >= p
    for fn, m in [("dropout_forward", mask), ("dropout_backward", mask),
                  ("dropout2d_forward", channel_mask), ("dropout2d_backward", channel_mask)]:
        got, want = getattr(module, fn)(x, m, p), getattr(reference, fn)(x, m, p)
        assert got.dtype == want.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-15, err_msg=f"{name} {fn}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(shape=shapes(4, 4, 1, 6), seed=seeds, p=st.sampled_from([0.0, 0.3, 0.5, 1.0]))
def test_dropout_cpu_matches_reference(dtype, shape, seed, p):
    assert_dropout_variant_matches_reference("cpu", shape, seed, dtype, p)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=3)
@given(shape=shapes(4, 4, 1, 3), seed=seeds, p=st.sampled_from([0.0, 0.5, 1.0]))
def test_dropout_cuda_simulator_matches_reference(dtype, shape, seed, p):
    assert_dropout_variant_matches_reference("cuda", shape, seed, dtype, p)


@pytest.mark.parametrize("variant", CPU_VARIANTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("two_d", [False, True])
def test_dropout_matches_torch_given_torchs_mask(variant, dtype, two_d):
    x = np.random.default_rng(4).uniform(0.5, 1.5, (4, 6, 3, 5)).astype(dtype)  # no zeros: mask = y != 0
    dy = np.random.default_rng(5).standard_normal(x.shape).astype(dtype)
    p = 0.3
    torch.manual_seed(0)
    xt = torch.tensor(x, requires_grad=True)
    yt = (TF.dropout2d if two_d else TF.dropout)(xt, p, training=True)
    yt.backward(torch.tensor(dy))
    mask = yt.detach().numpy() != 0
    if two_d:
        mask = mask[:, :, 0, 0]
    ours = minipsp.tensor(x, requires_grad=True)
    with kernels.use(variant):
        y = (Dropout2d if two_d else Dropout).apply(ours, mask, p)
        y.backward(dy)
    np.testing.assert_allclose(y.data, yt.detach().numpy(), **TOL[dtype])
    np.testing.assert_allclose(ours.grad, xt.grad.numpy(), **TOL[dtype])


@pytest.mark.parametrize("variant", CPU_VARIANTS)
def test_strided_inputs(variant):
    a = np.random.default_rng(6).uniform(0.5, 1.5, (2, 4, 5, 3))
    strided = minipsp.tensor(a).permute(0, 3, 1, 2)
    contiguous = minipsp.tensor(np.ascontiguousarray(strided.data))
    with kernels.use(variant):
        np.testing.assert_array_equal(F.relu(strided - 1).data, F.relu(contiguous - 1).data)
        for fn in (F.dropout, F.dropout2d):
            minipsp.manual_seed(1)
            first = fn(strided, 0.5).data
            minipsp.manual_seed(1)
            np.testing.assert_array_equal(first, fn(contiguous, 0.5).data)


def test_dropout_bad_inputs_name_the_argument():
    x = minipsp.randn(2, 3, 4, 4)
    for bad in (-0.1, 1.5, "0.5", None, True):
        with pytest.raises(ValueError, match=r"dropout: dropout probability p has to be between 0 and 1; got"):
            F.dropout(x, bad)
        with pytest.raises(ValueError, match=r"dropout2d: dropout probability p has to be between 0 and 1"):
            F.dropout2d(x, bad)
    with pytest.raises(ValueError, match=r"dropout2d: input must be 4-D \(N, C, H, W\); got shape \(2, 3\)"):
        F.dropout2d(minipsp.randn(2, 3), 0.5)
    with pytest.raises(TypeError, match="dropout: input must be a Tensor; got ndarray"):
        F.dropout(np.zeros(3), 0.5)


# -- real GPU (skipped without one: MINIPSP_REAL_GPU=1 pytest -m gpu) -------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_kernels_match_reference(dtype):
    import cupy

    shape = (4, 16, 33, 35)
    for name in ("relu", "dropout"):
        cuda, reference = kernels.load(name, "cuda"), kernels.load(name, "reference")
        x = with_zeros(shape, 0, dtype)
        dy = with_zeros(shape, 3, dtype)
        gx, gdy = cupy.asarray(x), cupy.asarray(dy)
        if name == "relu":
            y = reference.relu_forward(x)
            np.testing.assert_array_equal(cupy.asnumpy(cuda.relu_forward(gx)), y)
            np.testing.assert_array_equal(cupy.asnumpy(cuda.relu_backward(gdy, cupy.asarray(y))),
                                          reference.relu_backward(dy, y))
            continue
        rng = np.random.default_rng(1)
        for fn, mask in [("dropout_forward", rng.random(shape) >= 0.3),
                         ("dropout2d_backward", rng.random(shape[:2]) >= 0.3)]:
            got = getattr(cuda, fn)(gx, cupy.asarray(mask), 0.3)
            np.testing.assert_allclose(cupy.asnumpy(got), getattr(reference, fn)(x, mask, 0.3), rtol=1e-6)


@pytest.mark.gpu
def test_gpu_gradcheck_and_reproducible_dropout():
    x = minipsp.tensor(away_from_zero((2, 3, 4, 4), 0)).to("cuda").requires_grad_()
    assert minipsp.gradcheck(F.relu, [x], atol=1e-8, rtol=1e-6)

    def fixed_mask_dropout2d(t):
        minipsp.manual_seed(0)
        return F.dropout2d(t, 0.5)

    assert minipsp.gradcheck(fixed_mask_dropout2d, [x], atol=1e-8, rtol=1e-6)
    minipsp.manual_seed(9)
    first = F.dropout(x, 0.5).data.get()
    minipsp.manual_seed(9)
    np.testing.assert_array_equal(F.dropout(x, 0.5).data.get(), first)
