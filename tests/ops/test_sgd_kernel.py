"""kernels/sgd: the fused update (cpu, cuda under the simulator) equals reference.py bit for bit.

reference.py is the update written as NumPy expressions (each operation one rounding in the
parameter's dtype); tests/train/test_optim.py holds the optimiser as a whole to torch.optim.SGD.
Here every variant sees the same parameter, gradient and buffer over several steps, with
Hypothesis-drawn shapes, dtypes and hyper-parameters, and must produce the same bits.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minipsp import kernels
from tests.strategies import shapes

hyper_parameters = st.fixed_dictionaries({
    "lr": st.sampled_from([0.0, 0.01, 0.37, 2.0]), "momentum": st.sampled_from([0.0, 0.5, 0.9]),
    "dampening": st.sampled_from([0.0, 0.1]), "weight_decay": st.sampled_from([0.0, 1e-4, 0.3]),
    "nesterov": st.booleans()})


def run(name, shape, dtype, hyper, steps, seed, size=None):
    rng = np.random.default_rng(seed)
    param = rng.standard_normal(size or shape).astype(dtype).reshape(shape)
    buffer = np.empty_like(param) if hyper["momentum"] != 0 else None
    step = kernels.load("sgd", name).sgd_step
    for i in range(steps):
        grad = rng.standard_normal(shape).astype(dtype)
        step(param, grad, buffer, first=i == 0, **hyper)
    return param, buffer


def assert_variant_matches_reference(name, shape, dtype, hyper, seed, steps=3):
    ours, our_buffer = run(name, shape, dtype, hyper, steps, seed)
    want, want_buffer = run("reference", shape, dtype, hyper, steps, seed)
    assert ours.dtype == dtype
    np.testing.assert_array_equal(ours, want)
    if want_buffer is not None:
        np.testing.assert_array_equal(our_buffer, want_buffer)
    if hyper["lr"] != 0:
        assert not np.array_equal(ours, run("reference", shape, dtype, hyper, 0, seed)[0])  # it moved


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(shape=shapes(1, 3, 1, 7), hyper=hyper_parameters, seed=st.integers(0, 2**16))
def test_sgd_cpu_matches_reference(dtype, shape, hyper, seed):
    assert_variant_matches_reference("cpu", shape, dtype, hyper, seed)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_cpu_parallel_loop_matches_reference(dtype):
    """Above PARALLEL_MIN_SIZE the loop is a prange: the same bits, element by element."""
    size = kernels.load("sgd", "cpu").PARALLEL_MIN_SIZE + 3
    hyper = dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=1e-4, nesterov=True)
    assert_variant_matches_reference("cpu", (size,), dtype, hyper, seed=1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=4)
@given(shape=shapes(1, 3, 1, 4), hyper=hyper_parameters, seed=st.integers(0, 2**16))
def test_sgd_cuda_simulator_matches_reference(dtype, shape, hyper, seed):
    assert_variant_matches_reference("cuda", shape, dtype, hyper, seed)


@pytest.mark.parametrize("name", ["cpu", "cuda"])
def test_sgd_kernel_non_contiguous_parameter_goes_through_the_reference(name):
    hyper = dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=1e-4, nesterov=False)
    rng = np.random.default_rng(0)
    base = rng.standard_normal((4, 6)).astype(np.float32)
    grad = rng.standard_normal((4, 3)).astype(np.float32)
    ours, want = base.copy(), base.copy()
    our_buffer, want_buffer = np.empty((4, 3), np.float32), np.empty((4, 3), np.float32)
    kernels.load("sgd", name).sgd_step(ours[:, ::2], grad, our_buffer, first=True, **hyper)
    kernels.load("sgd", "reference").sgd_step(want[:, ::2], grad, want_buffer, first=True, **hyper)
    np.testing.assert_array_equal(ours, want)
    np.testing.assert_array_equal(ours[:, 1::2], base[:, 1::2])


@pytest.mark.parametrize("name", ["cpu", "cuda"])
def test_sgd_kernel_rejects_mismatched_arrays(name):
    step = kernels.load("sgd", name).sgd_step
    hyper = dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=False, first=True)
    p = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"grad must have param's shape \(3,\) and dtype float32; got \(4,\)"):
        step(p, np.zeros(4, np.float32), np.zeros(3, np.float32), **hyper)
    with pytest.raises(ValueError, match="momentum_buffer must have param's shape .* got .* float64"):
        step(p, np.zeros(3, np.float32), np.zeros(3, np.float64), **hyper)
    with pytest.raises(ValueError, match="momentum != 0 needs a momentum_buffer"):
        step(p, np.zeros(3, np.float32), None, **hyper)
    with pytest.raises(ValueError, match="param must be a float array; got dtype int64"):
        step(np.zeros(3, np.int64), np.zeros(3, np.int64), None, **{**hyper, "momentum": 0.0})
