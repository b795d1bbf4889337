"""What a real GPU checks at launch that Numba's CUDA simulator does not, checked here in CI.

The simulator runs a kernel launched with 0 blocks as a loop over nothing, accepts any block size,
and never recompiles. On a GPU, a grid with 0 blocks (an empty array) fails with
CUDA_ERROR_INVALID_VALUE, a block of more than 1024 threads fails too, and a kernel called with
argument types it has not seen (an np.int32 where it saw a Python int, a float64 scale where it saw
a float32, a non-contiguous array where it saw a contiguous one) is compiled again, for seconds.

The fixture below makes the simulator's launches check the real limits and record each kernel's
argument types as Numba's dispatcher types them. Every launcher of every family is then called on
empty inputs (must match the reference, with no invalid launch) and twice with different shapes
and differently typed hyper-parameters (must add no new signature). Skipped on a real GPU, where the
driver itself checks the launches.
"""

import numba
import numpy as np
import pytest
from minipsp.kernels import load

if not numba.config.ENABLE_CUDASIM:
    pytest.skip("checks the CUDA simulator's launches; on a real GPU the driver does", allow_module_level=True)

from numba.cuda.simulator.kernel import FakeCUDAKernel  # noqa: E402

MAX_THREADS_PER_BLOCK = 1024
MAX_GRID = (2**31 - 1, 65535, 65535)


@pytest.fixture
def launches(monkeypatch):
    """Make simulated launches fail as a GPU would; yield {kernel name: set of argument-type tuples}."""
    signatures = {}
    configure, call = FakeCUDAKernel.__getitem__, FakeCUDAKernel.__call__

    def checked_configure(self, configuration):
        kernel = configure(self, configuration)
        grid, block = self.grid_dim, self.block_dim
        name = self.fn.__name__
        if min(grid) < 1 or any(g > limit for g, limit in zip(grid, MAX_GRID)):
            raise AssertionError(f"{name}: grid {grid} is invalid on a GPU (each dimension 1..{MAX_GRID})")
        if min(block) < 1 or np.prod(block) > MAX_THREADS_PER_BLOCK:
            raise AssertionError(f"{name}: block {block} is invalid on a GPU (1..{MAX_THREADS_PER_BLOCK} threads)")
        return kernel

    def recording_call(self, *args):
        if not self._device:
            signature = tuple(str(numba.typeof(a)) for a in args)
            signatures.setdefault(self.fn.__name__, set()).add(signature)
        return call(self, *args)

    monkeypatch.setattr(FakeCUDAKernel, "__getitem__", checked_configure)
    monkeypatch.setattr(FakeCUDAKernel, "__call__", recording_call)
    yield signatures


def test_the_checks_can_fail(launches):
    """A launch with 0 blocks, which the plain simulator accepts, is refused under the fixture."""
    relu = load("relu", "cuda")
    with pytest.raises(AssertionError, match=r"grid \(0, 1, 1\) is invalid"):
        relu._relu_forward_kernel[0, relu.THREADS](np.zeros(0, np.float32), np.zeros(0, np.float32))


# ---------------------------------------------------------------- one call per launcher
# Each case is (family, fn(module, N, odd)) returning the launcher's outputs for a batch of N images.
# `odd` switches every hyper-parameter to another Python or NumPy type of the same value (and makes
# the inputs non-contiguous views), which must not change which compiled kernel runs.


def _arrays(N, odd, *shapes, seed=0):
    """float32 arrays of shape (N, *shape); with `odd`, each is a strided view of a larger array."""
    rng = np.random.default_rng(seed)
    out = []
    for shape in shapes:
        a = rng.standard_normal((N, *shape)).astype(np.float32)
        if odd:  # same values, not contiguous
            wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), np.float32)
            wide[..., ::2] = a
            a = wide[..., ::2]
        out.append(a)
    return out


def _int(v, odd):
    return np.int32(v) if odd else v


def _conv(k, N, odd):
    x, dy = _arrays(N, odd, (3, 6, 5), (4, 4, 3))
    w, b = np.ones((4, 3, 3, 3), np.float32) / 9, np.arange(4, dtype=np.float32)
    hyper = ((_int(1, odd), _int(2, odd)), (_int(1, odd), 1), (2, _int(1, odd)))
    return (k.conv2d_forward(x, w, b, *hyper), *k.conv2d_backward(dy, x, w, *hyper),
            k.col2im(k.im2col(x, (3, 3), *hyper), x.shape, (3, 3), *hyper))


def _batch_norm_eval(k, N, odd):
    x, dy = _arrays(N, odd, (3, 4, 5), (3, 4, 5))
    w, b = np.float32([1, 2, 3]), np.float32([0, 1, -1])
    rm, rv = np.float32([0.1, 0.2, 0.3]), np.float32([1, 2, 0.5])
    eps = np.float32(1e-5) if odd else 1e-5
    return k.batch_norm_forward_eval(x, w, b, rm, rv, eps), *k.batch_norm_backward_eval(dy, x, w, rm, rv, eps)


def _batch_norm_train(k, N, odd):
    # training needs values to average: empty only along C
    x, dy = _arrays(N + 2, odd, (N, 4, 5), (N, 4, 5))
    w, b = np.ones(N, np.float32), np.zeros(N, np.float32)
    eps = np.float32(1e-5) if odd else 1e-5
    y, mean, var, rstd = k.batch_norm_forward(x, w, b, eps)
    return (y, mean, var, rstd, *k.batch_norm_backward(dy, x, w, mean, rstd))


def _cross_entropy(k, N, odd):
    (x,) = _arrays(N, odd, (5, 3, 4))
    target = np.random.default_rng(1).integers(0, 5, (N, 3, 4))
    target[..., 0] = 255
    dloss = np.ones((N, 3, 4), np.float32)
    weight = np.linspace(0.5, 1.5, 5).astype(np.float32)
    ignore = _int(255, odd)
    y = k.log_softmax_forward(x)
    loss, pixel_weight, prob = k.cross_entropy_forward(x, target, weight, ignore)
    return (y, k.log_softmax_backward(x, y), *k.nll_loss_forward(y, target, weight, ignore),
            k.nll_loss_backward(dloss, target, weight, ignore, 5), loss, pixel_weight, prob,
            k.cross_entropy_backward(dloss, prob, target, weight, ignore))


def _dropout(k, N, odd):
    (x,) = _arrays(N, odd, (3, 4, 5))
    rng = np.random.default_rng(2)
    p = np.float64(0.25) if odd else 0.25
    return (k.dropout_forward(x, rng.random(x.shape) >= 0.25, p), k.dropout2d_forward(x, rng.random((N, 3)) >= 0.25, p),
            k.dropout_backward(x, rng.random(x.shape) >= 0.25, p))


def _interpolate(k, N, odd):
    x, dy = _arrays(N, odd, (2, 5, 6), (2, 9, 7))
    size = (_int(9, odd), _int(7, odd))
    return (k.bilinear_forward(x, size, True), k.bilinear_forward(x, size, False),
            k.bilinear_backward(dy, (5, 6), False), k.nearest_forward(x, size), k.nearest_backward(dy, (5, 6)))


def _max_pool(k, N, odd):
    (x,) = _arrays(N, odd, (2, 7, 6))
    hyper = ((_int(3, odd), 3), (2, _int(2, odd)), (_int(1, odd), 1), True)
    y, indices = k.max_pool2d_forward(x, *hyper)
    return y, indices, k.max_pool2d_backward(np.ones(y.shape, np.float32), indices, x.shape)


def _adaptive_pool(k, N, odd):
    x, dy = _arrays(N, odd, (2, 7, 6), (2, 3, 2))
    size = (_int(3, odd), 2)
    y, indices = k.adaptive_max_pool2d_forward(x, size)
    return (k.adaptive_avg_pool2d_forward(x, size), k.adaptive_avg_pool2d_backward(dy, x.shape), y, indices,
            k.adaptive_max_pool2d_backward(dy, indices, x.shape))


def _relu(k, N, odd):
    x, dy = _arrays(N, odd, (3, 4, 5), (3, 4, 5))
    y = k.relu_forward(x)
    return y, k.relu_backward(dy, y)


CASES = {
    "conv2d": ("conv2d", _conv), "batch_norm_eval": ("batch_norm", _batch_norm_eval),
    "batch_norm_train": ("batch_norm", _batch_norm_train), "cross_entropy": ("cross_entropy", _cross_entropy),
    "dropout": ("dropout", _dropout), "interpolate": ("interpolate", _interpolate),
    "max_pool2d": ("max_pool2d", _max_pool), "adaptive_pool": ("adaptive_pool", _adaptive_pool),
    "relu": ("relu", _relu),
}


def _assert_same(got, expected, name):
    assert len(got) == len(expected)
    for i, (a, b) in enumerate(zip(got, expected)):
        assert type(a) is np.ndarray, f"{name} output {i}: {type(a).__name__}, not a NumPy array"
        assert a.shape == b.shape and a.dtype == b.dtype, \
            f"{name} output {i}: {a.shape} {a.dtype}, expected {b.shape} {b.dtype}"
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"{name} output {i}")


@pytest.mark.parametrize("case", CASES)
def test_empty_batch_launches_nothing_invalid_and_matches_reference(launches, case):
    family, fn = CASES[case]
    got = fn(load(family, "cuda"), 0, False)  # the fixture fails any launch a GPU would refuse
    try:
        with np.errstate(all="ignore"):
            expected = fn(load(family, "reference"), 0, False)
    except ValueError:  # the reference itself cannot take an empty batch (max pooling's backward)
        expected = None
    if expected is not None:
        _assert_same(got, expected, case)


@pytest.mark.parametrize("case", CASES)
def test_each_kernel_compiles_once_per_dtype(launches, case):
    """Other shapes, views and hyper-parameter types reuse the signatures of the first call."""
    family, fn = CASES[case]
    cuda, reference = load(family, "cuda"), load(family, "reference")
    _assert_same(fn(cuda, 2, False), fn(reference, 2, False), case)
    first = {name: set(s) for name, s in launches.items()}
    _assert_same(fn(cuda, 3, True), fn(reference, 3, True), case)
    for name, signatures in launches.items():
        new = signatures - first.get(name, set())
        assert not new, f"{name} would compile again on a GPU for {sorted(new)}; first saw {sorted(first.get(name))}"
