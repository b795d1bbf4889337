"""Pooling: max_pool2d, adaptive_avg_pool2d, adaptive_max_pool2d.

Four layers of evidence:
  gradcheck     minipsp.gradcheck (float64, central differences) on Hypothesis-drawn shapes and
                hyper-parameters, for the reference and the cpu variants;
  conformance   cpu == reference and cuda (Numba's simulator, tiny shapes) == reference,
                forward, indices and backward;
  parity        the same inputs through torch.nn.functional: outputs, indices and input gradients;
  errors        bad arguments raise an error naming the argument and the value.
Max pooling is differentiated on inputs without ties (a scaled random permutation, spaced far
more than gradcheck's eps apart), where the argmax, and so the gradient, is well defined.
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

pool_output_size = kernels.load("max_pool2d", "reference").pool_output_size  # from the package __init__

CPU_VARIANTS = ["reference", "cpu"]
TOL = {np.float32: dict(rtol=1e-4, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}


def distinct(shape, dtype=np.float64, seed=0):
    """Values without ties: a random permutation of 0..n-1, scaled to [-1, 1)."""
    n = int(np.prod(shape))
    rng = np.random.default_rng(seed)
    return (rng.permutation(n).reshape(shape) * (2.0 / max(n, 1)) - 1.0).astype(dtype)


def random_like(shape, dtype=np.float64, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# -- Hypothesis strategies ------------------------------------------------------------------------
@st.composite
def max_pool_settings(draw, max_size=9, max_nc=2):
    """(shape, kernel, stride, padding, ceil_mode) with an output of at least 1 x 1."""
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    ceil_mode = draw(st.booleans())
    # H >= KH - 2*PH keeps the window inside the padded input
    H, W = (draw(st.integers(max(1, k - 2 * p), max_size)) for k, p in zip(kernel, padding))
    shape = (draw(st.integers(1, max_nc)), draw(st.integers(1, max_nc)), H, W)
    return shape, kernel, stride, padding, ceil_mode


@st.composite
def adaptive_settings(draw, max_size=9, max_out=7, max_nc=2):
    """(shape, (OH, OW)): sizes that divide H and that do not, and OH > H."""
    shape = (draw(st.integers(1, max_nc)), draw(st.integers(1, max_nc)),
             draw(st.integers(1, max_size)), draw(st.integers(1, max_size)))
    return shape, (draw(st.integers(1, max_out)), draw(st.integers(1, max_out)))


# -- gradient checks ------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", CPU_VARIANTS)
@given(case=max_pool_settings())
def test_max_pool2d_gradcheck(variant, case):
    shape, kernel, stride, padding, ceil_mode = case
    x = minipsp.tensor(distinct(shape), requires_grad=True)
    with kernels.use(variant):
        assert minipsp.gradcheck(lambda t: F.max_pool2d(t, kernel, stride, padding, ceil_mode=ceil_mode), [x],
                                 atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("variant", CPU_VARIANTS)
@given(case=adaptive_settings())
def test_adaptive_avg_pool2d_gradcheck(variant, case):
    shape, size = case
    x = minipsp.tensor(random_like(shape), requires_grad=True)
    with kernels.use(variant):
        assert minipsp.gradcheck(lambda t: F.adaptive_avg_pool2d(t, size), [x], atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("variant", CPU_VARIANTS)
@given(case=adaptive_settings())
def test_adaptive_max_pool2d_gradcheck(variant, case):
    shape, size = case
    x = minipsp.tensor(distinct(shape), requires_grad=True)
    with kernels.use(variant):
        assert minipsp.gradcheck(lambda t: F.adaptive_max_pool2d(t, size), [x], atol=1e-8, rtol=1e-6)


# -- conformance: cpu and cuda (simulator) against reference -------------------------------------
def _check_max_pool_variant(name, case, dtype):
    shape, kernel, stride, padding, ceil_mode = case
    reference, other = kernels.load("max_pool2d", "reference"), kernels.load("max_pool2d", name)
    x = distinct(shape, dtype)
    y_ref, i_ref = reference.max_pool2d_forward(x, kernel, stride, padding, ceil_mode)
    y, i = other.max_pool2d_forward(x, kernel, stride, padding, ceil_mode)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(i, i_ref)
    assert y.dtype == dtype and i.dtype == np.int64
    dy = random_like(y.shape, dtype)
    np.testing.assert_allclose(other.max_pool2d_backward(dy, i, shape),
                               reference.max_pool2d_backward(dy, i_ref, shape), **TOL[dtype])


def _check_adaptive_variant(name, case, dtype):
    shape, size = case
    reference, other = kernels.load("adaptive_pool", "reference"), kernels.load("adaptive_pool", name)
    x = distinct(shape, dtype)
    y = other.adaptive_avg_pool2d_forward(x, size)
    np.testing.assert_allclose(y, reference.adaptive_avg_pool2d_forward(x, size), **TOL[dtype])
    assert y.dtype == dtype
    dy = random_like(y.shape, dtype)
    np.testing.assert_allclose(other.adaptive_avg_pool2d_backward(dy, shape),
                               reference.adaptive_avg_pool2d_backward(dy, shape), **TOL[dtype])
    (y, i), (y_ref, i_ref) = other.adaptive_max_pool2d_forward(x, size), reference.adaptive_max_pool2d_forward(x, size)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(i, i_ref)
    np.testing.assert_allclose(other.adaptive_max_pool2d_backward(dy, i, shape),
                               reference.adaptive_max_pool2d_backward(dy, i_ref, shape), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(case=max_pool_settings(max_size=12, max_nc=3))
def test_max_pool2d_cpu_matches_reference(dtype, case):
    _check_max_pool_variant("cpu", case, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(case=adaptive_settings(max_size=14, max_nc=3))
def test_adaptive_pool_cpu_matches_reference(dtype, case):
    _check_adaptive_variant("cpu", case, dtype)


# The simulator runs each GPU thread as a Python thread: tiny shapes, few examples.
@settings(max_examples=6)
@given(case=max_pool_settings(max_size=6))
def test_max_pool2d_cuda_simulator_matches_reference(case):
    _check_max_pool_variant("cuda", case, np.float32)


@settings(max_examples=6)
@given(case=adaptive_settings(max_size=6, max_out=4))
def test_adaptive_pool_cuda_simulator_matches_reference(case):
    _check_adaptive_variant("cuda", case, np.float32)


def test_pool_output_size_follows_torch_ceil_mode_rule():
    # 5 with kernel 2, stride 2, padding 1: ceil gives 4 windows, but the 4th would start at
    # 6 >= 5 + 1, inside the right padding only, so torch drops it.
    assert pool_output_size(5, 2, 2, 1, ceil_mode=False) == 3
    assert pool_output_size(5, 2, 2, 1, ceil_mode=True) == 3
    assert pool_output_size(6, 3, 2, 0, ceil_mode=True) == 3
    assert pool_output_size(6, 3, 2, 0, ceil_mode=False) == 2
    assert TF.max_pool2d(torch.zeros(1, 1, 5, 5), 2, 2, 1, ceil_mode=True).shape[-1] == 3


def test_adaptive_bin_edges_overlap_when_size_does_not_divide():
    from minipsp.kernels.adaptive_pool.reference import adaptive_bin_edges

    start, end = adaptive_bin_edges(7, 6)
    assert start.tolist() == [0, 1, 2, 3, 4, 5] and end.tolist() == [2, 3, 4, 5, 6, 7]
    start, end = adaptive_bin_edges(129, 3)
    assert start.tolist() == [0, 43, 86] and end.tolist() == [43, 86, 129]
    start, end = adaptive_bin_edges(2, 3)  # more bins than rows: rows repeat
    assert start.tolist() == [0, 0, 1] and end.tolist() == [1, 2, 2]


# -- parity with torch ----------------------------------------------------------------------------
def _compare_with_torch(ours, theirs, x, dtype, with_indices):
    """Run ours (minipsp) and theirs (torch) on x; compare outputs, indices and input gradients."""
    tol = TOL[dtype]
    xm = minipsp.tensor(x.astype(dtype), requires_grad=True)
    xt = torch.tensor(x.astype(dtype), requires_grad=True)
    ym, yt = ours(xm), theirs(xt)
    if with_indices:
        (ym, im), (yt, it) = ym, yt
        np.testing.assert_array_equal(im.numpy(), it.numpy())
    np.testing.assert_allclose(ym.numpy(), yt.detach().numpy(), **tol)
    dy = random_like(ym.shape, dtype)
    ym.backward(dy)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(xm.grad, xt.grad.numpy(), **tol)


@pytest.mark.parametrize("variant", CPU_VARIANTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, kernel, stride, padding, ceil_mode", [
    ((2, 4, 33, 33), 3, 2, 1, False),        # ResNet's stem max pool
    ((2, 4, 32, 30), 3, 2, 1, True),
    ((1, 3, 11, 8), (3, 2), (2, 3), (1, 0), True),
    ((1, 2, 9, 9), 2, None, 0, False),      # stride defaults to kernel_size
    ((1, 2, 5, 5), 2, 2, 1, True),          # ceil_mode drops the window starting in the padding
    ((2, 3, 10, 10), 4, 1, 2, False),       # overlapping windows: gradients add up
])
def test_max_pool2d_matches_torch(variant, dtype, shape, kernel, stride, padding, ceil_mode):
    with kernels.use(variant):
        _compare_with_torch(
            lambda t: F.max_pool2d(t, kernel, stride, padding, ceil_mode=ceil_mode, return_indices=True),
            lambda t: TF.max_pool2d(t, kernel, stride, padding, ceil_mode=ceil_mode, return_indices=True),
            distinct(shape), dtype, with_indices=True)


@given(case=max_pool_settings(max_size=10, max_nc=3))
def test_max_pool2d_matches_torch_on_drawn_settings(case):
    shape, kernel, stride, padding, ceil_mode = case
    _compare_with_torch(
        lambda t: F.max_pool2d(t, kernel, stride, padding, ceil_mode=ceil_mode, return_indices=True),
        lambda t: TF.max_pool2d(t, kernel, stride, padding, ceil_mode=ceil_mode, return_indices=True),
        distinct(shape), np.float64, with_indices=True)


ADAPTIVE_CASES = [
    ((2, 8, 60, 60), 6),             # PSPNet's 6x6 level on a 60x60 feature map (473 crop)
    ((2, 8, 60, 60), 1),
    ((2, 3, 7, 7), 6),               # bins overlap by one row
    ((1, 2, 129, 129), 3),           # 129 = 3 * 43 divides: no overlap
    ((1, 2, 129, 130), (4, 7)),      # 129 / 4 and 130 / 7 do not: bins overlap
    ((1, 2, 9, 130), (None, 7)),     # None keeps H
    ((2, 3, 10, 13), (3, 4)),        # non-square output
    ((1, 2, 3, 2), (5, 6)),          # output larger than input
]


@pytest.mark.parametrize("variant", CPU_VARIANTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, size", ADAPTIVE_CASES)
def test_adaptive_avg_pool2d_matches_torch(variant, dtype, shape, size):
    with kernels.use(variant):
        _compare_with_torch(lambda t: F.adaptive_avg_pool2d(t, size), lambda t: TF.adaptive_avg_pool2d(t, size),
                            random_like(shape), dtype, with_indices=False)


@pytest.mark.parametrize("variant", CPU_VARIANTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, size", ADAPTIVE_CASES)
def test_adaptive_max_pool2d_matches_torch(variant, dtype, shape, size):
    with kernels.use(variant):
        _compare_with_torch(lambda t: F.adaptive_max_pool2d(t, size, return_indices=True),
                            lambda t: TF.adaptive_max_pool2d(t, size, return_indices=True),
                            distinct(shape), dtype, with_indices=True)


@given(case=adaptive_settings(max_size=12, max_out=8, max_nc=3))
def test_adaptive_pools_match_torch_on_drawn_shapes(case):
    shape, size = case
    x = distinct(shape)
    _compare_with_torch(lambda t: F.adaptive_avg_pool2d(t, size), lambda t: TF.adaptive_avg_pool2d(t, size),
                        x, np.float64, with_indices=False)
    _compare_with_torch(lambda t: F.adaptive_max_pool2d(t, size, return_indices=True),
                        lambda t: TF.adaptive_max_pool2d(t, size, return_indices=True),
                        x, np.float64, with_indices=True)


def test_three_dimensional_input_gets_a_batch_of_one():
    x = distinct((3, 9, 7))
    _compare_with_torch(lambda t: F.max_pool2d(t, 3, 2, 1, return_indices=True),
                        lambda t: TF.max_pool2d(t, 3, 2, 1, return_indices=True), x, np.float64, True)
    _compare_with_torch(lambda t: F.adaptive_avg_pool2d(t, (2, None)),
                        lambda t: TF.adaptive_avg_pool2d(t, (2, None)), x, np.float64, False)
    _compare_with_torch(lambda t: F.adaptive_max_pool2d(t, 4, return_indices=True),
                        lambda t: TF.adaptive_max_pool2d(t, 4, return_indices=True), x, np.float64, True)


@pytest.mark.parametrize("variant", CPU_VARIANTS)
def test_non_contiguous_input(variant):
    x = distinct((2, 3, 8, 11))
    with kernels.use(variant):
        _compare_with_torch(lambda t: F.max_pool2d(t.transpose(2, 3), 3, 2, 1, return_indices=True),
                            lambda t: TF.max_pool2d(t.transpose(2, 3), 3, 2, 1, return_indices=True),
                            x, np.float64, True)
        _compare_with_torch(lambda t: F.adaptive_avg_pool2d(t.permute(1, 0, 3, 2), (3, 5)),
                            lambda t: TF.adaptive_avg_pool2d(t.permute(1, 0, 3, 2), (3, 5)), x, np.float64, False)
        _compare_with_torch(lambda t: F.adaptive_max_pool2d(t[:, :, ::2, 1:], 3, return_indices=True),
                            lambda t: TF.adaptive_max_pool2d(t[:, :, ::2, 1:], 3, return_indices=True),
                            x, np.float64, True)


def test_cuda_simulator_handles_an_empty_batch():
    x = np.zeros((0, 2, 5, 5), np.float32)
    y, i = kernels.load("max_pool2d", "cuda").max_pool2d_forward(x, (3, 3), (2, 2), (1, 1), False)
    assert y.shape == (0, 2, 3, 3) and i.shape == (0, 2, 3, 3)
    assert kernels.load("adaptive_pool", "cuda").adaptive_avg_pool2d_forward(x, (2, 2)).shape == (0, 2, 2, 2)


@pytest.mark.parametrize("variant", CPU_VARIANTS)
def test_nan_propagates_like_torch(variant):
    x = distinct((1, 1, 6, 6), np.float32)
    x[0, 0, 1, 1] = np.nan
    with kernels.use(variant):
        ours = [F.max_pool2d(minipsp.tensor(x), 3, 2, 1).numpy(), F.adaptive_max_pool2d(minipsp.tensor(x), 2).numpy()]
    theirs = [TF.max_pool2d(torch.tensor(x), 3, 2, 1).numpy(), TF.adaptive_max_pool2d(torch.tensor(x), 2).numpy()]
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_array_equal(a[~np.isnan(a)], b[~np.isnan(b)])


def test_gradient_is_not_recorded_without_requires_grad():
    y = F.adaptive_avg_pool2d(minipsp.tensor(random_like((1, 2, 6, 6))), 3)
    assert not y.requires_grad and y.shape == (1, 2, 3, 3)


# -- bad input ------------------------------------------------------------------------------------
X = minipsp.tensor(random_like((1, 2, 6, 6)))

BAD_CALLS = [
    (lambda: F.max_pool2d(X.numpy(), 2), TypeError, ["max_pool2d", "Tensor", "ndarray"]),
    (lambda: F.max_pool2d(minipsp.tensor(random_like((6, 6))), 2), ValueError, ["max_pool2d", "4-D", "(6, 6)"]),
    (lambda: F.max_pool2d(minipsp.tensor(np.zeros((1, 1, 4, 4), np.int64)), 2), TypeError,
     ["max_pool2d", "floating", "int64"]),
    (lambda: F.max_pool2d(X, 0), ValueError, ["kernel_size", "0"]),
    (lambda: F.max_pool2d(X, (2, 2, 2)), TypeError, ["kernel_size", "(2, 2, 2)"]),
    (lambda: F.max_pool2d(X, 2.5), TypeError, ["kernel_size", "2.5"]),
    (lambda: F.max_pool2d(X, 3, 0), ValueError, ["stride", "0"]),
    (lambda: F.max_pool2d(X, 3, 2, 2), ValueError, ["padding", "(2, 2)", "kernel_size", "(3, 3)"]),
    (lambda: F.max_pool2d(X, 3, 2, -1), ValueError, ["padding", "(-1, -1)"]),
    (lambda: F.max_pool2d(X, 3, dilation=2), ValueError, ["dilation", "2"]),
    (lambda: F.max_pool2d(X, 7), ValueError, ["larger than the padded input", "(6, 6)", "kernel_size=(7, 7)"]),
    (lambda: F.adaptive_avg_pool2d(X, 0), ValueError, ["adaptive_avg_pool2d", "output_size", "0"]),
    (lambda: F.adaptive_avg_pool2d(X, (3, -1)), ValueError, ["output_size", "(3, -1)"]),
    (lambda: F.adaptive_avg_pool2d(X, "6"), TypeError, ["output_size", "'6'"]),
    (lambda: F.adaptive_max_pool2d(minipsp.tensor(random_like((1, 1, 1, 2, 2))), 1), ValueError,
     ["adaptive_max_pool2d", "4-D", "(1, 1, 1, 2, 2)"]),
    (lambda: F.adaptive_max_pool2d(minipsp.tensor(random_like((1, 1, 0, 2))), 1), ValueError,
     ["adaptive_max_pool2d", "spatial size", "(0, 2)"]),
    (lambda: F.adaptive_max_pool2d(X, (2, 0)), ValueError, ["adaptive_max_pool2d", "output_size", "(2, 0)"]),
]


@pytest.mark.parametrize("call, error, words", BAD_CALLS)
def test_bad_input_names_the_argument(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), f"{word!r} not in {str(info.value)!r}"


# -- on a real GPU (skipped unless MINIPSP_REAL_GPU=1 and CuPy sees a device) ----------------------
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_kernels_on_gpu_match_reference(dtype):
    import cupy

    max_ref, max_gpu = kernels.load("max_pool2d", "reference"), kernels.load("max_pool2d", "cuda")
    ada_ref, ada_gpu = kernels.load("adaptive_pool", "reference"), kernels.load("adaptive_pool", "cuda")
    x = distinct((2, 16, 61, 59), dtype)
    xg = cupy.asarray(x)
    y_ref, i_ref = max_ref.max_pool2d_forward(x, (3, 3), (2, 2), (1, 1), True)
    y, i = max_gpu.max_pool2d_forward(xg, (3, 3), (2, 2), (1, 1), True)
    np.testing.assert_array_equal(y.get(), y_ref)
    np.testing.assert_array_equal(i.get(), i_ref)
    dy = random_like(y_ref.shape, dtype)
    np.testing.assert_allclose(max_gpu.max_pool2d_backward(cupy.asarray(dy), i, x.shape).get(),
                               max_ref.max_pool2d_backward(dy, i_ref, x.shape), **TOL[dtype])
    for size in [(1, 1), (2, 2), (3, 3), (6, 6), (7, 5)]:
        dy = random_like((2, 16) + size, dtype)
        np.testing.assert_allclose(ada_gpu.adaptive_avg_pool2d_forward(xg, size).get(),
                                   ada_ref.adaptive_avg_pool2d_forward(x, size), **TOL[dtype])
        np.testing.assert_allclose(ada_gpu.adaptive_avg_pool2d_backward(cupy.asarray(dy), x.shape).get(),
                                   ada_ref.adaptive_avg_pool2d_backward(dy, x.shape), **TOL[dtype])
        y, i = ada_gpu.adaptive_max_pool2d_forward(xg, size)
        y_ref, i_ref = ada_ref.adaptive_max_pool2d_forward(x, size)
        np.testing.assert_array_equal(y.get(), y_ref)
        np.testing.assert_array_equal(i.get(), i_ref)
        np.testing.assert_allclose(ada_gpu.adaptive_max_pool2d_backward(cupy.asarray(dy), i, x.shape).get(),
                                   ada_ref.adaptive_max_pool2d_backward(dy, i_ref, x.shape), **TOL[dtype])


@pytest.mark.gpu
def test_gradcheck_on_gpu():
    x = minipsp.tensor(distinct((2, 2, 7, 6)), requires_grad=True, device="cuda")
    assert minipsp.gradcheck(lambda t: F.max_pool2d(t, 3, 2, 1, ceil_mode=True), [x], atol=1e-8, rtol=1e-6)
    assert minipsp.gradcheck(lambda t: F.adaptive_avg_pool2d(t, (6, 4)), [x], atol=1e-8, rtol=1e-6)
    assert minipsp.gradcheck(lambda t: F.adaptive_max_pool2d(t, (4, 3)), [x], atol=1e-8, rtol=1e-6)
