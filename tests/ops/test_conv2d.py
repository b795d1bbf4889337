"""conv2d: gradient checks, kernel conformance (cpu and cuda vs reference), torch parity, bad input.

Shapes and hyper-parameters are drawn by Hypothesis: kernel 1/3/7, stride 1/2, padding 0-3,
dilation 1/2/4/6, each chosen per axis, with the input just large enough (plus a few pixels) for
the dilated kernel to fit, so that no drawn case has an empty output.
"""

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from minipsp.kernels.conv2d import cpu, reference
from minipsp.kernels.conv2d import cuda as cuda_kernels

import minipsp
import minipsp.nn.functional as F

TOLERANCE = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}


@st.composite
def conv_configs(draw, max_n=2, max_c=3, kernels=(1, 3, 7), strides=(1, 2), max_padding=3,
                 dilations=(1, 2, 4, 6), max_extra=4):
    """A dict: N, C_in, C_out, H, W, kernel_size, stride, padding, dilation (pairs), seed."""
    kernel_size = tuple(draw(st.sampled_from(kernels)) for _ in range(2))
    stride = tuple(draw(st.sampled_from(strides)) for _ in range(2))
    padding = tuple(draw(st.integers(0, max_padding)) for _ in range(2))
    dilation = tuple(draw(st.sampled_from(dilations)) for _ in range(2))
    # Smallest size with a non-empty output: the dilated kernel must fit in the padded input.
    smallest = [max(1, d * (k - 1) + 1 - 2 * p) for k, p, d in zip(kernel_size, padding, dilation)]
    H, W = (s + draw(st.integers(0, max_extra)) for s in smallest)
    if H * W > 100:  # a large dilated kernel needs a large input: keep the batch small then
        max_n = max_c = 1
    config = dict(N=draw(st.integers(1, max_n)), C_in=draw(st.integers(1, max_c)),
                  C_out=draw(st.integers(1, max_c)), H=H, W=W, kernel_size=kernel_size, stride=stride,
                  padding=padding, dilation=dilation, seed=draw(st.integers(0, 2**16)))
    assume(reference.output_size(H, kernel_size[0], stride[0], padding[0], dilation[0]) >= 1)
    assume(reference.output_size(W, kernel_size[1], stride[1], padding[1], dilation[1]) >= 1)
    return config


def make_arrays(config, dtype=np.float64):
    """x, weight, bias as NumPy arrays of `dtype`, and the hyper-parameters as a tuple."""
    rng = np.random.default_rng(config["seed"])
    x = rng.standard_normal((config["N"], config["C_in"], config["H"], config["W"])).astype(dtype)
    weight = rng.standard_normal((config["C_out"], config["C_in"], *config["kernel_size"])).astype(dtype)
    bias = rng.standard_normal(config["C_out"]).astype(dtype)
    return x, weight, bias, (config["stride"], config["padding"], config["dilation"])


def output_shape(config):
    OH, OW = (reference.output_size(size, k, s, p, d) for size, k, s, p, d in zip(
        (config["H"], config["W"]), config["kernel_size"], config["stride"], config["padding"],
        config["dilation"]))
    return config["N"], config["C_out"], OH, OW


# ---------------------------------------------------------------- gradient checks (float64)

@pytest.mark.parametrize("variant", ["reference", "cpu"])
@given(config=conv_configs(max_extra=3), with_bias=st.booleans())
def test_conv2d_gradcheck(variant, config, with_bias):
    x, weight, bias, (stride, padding, dilation) = make_arrays(config)
    inputs = [minipsp.tensor(x, requires_grad=True), minipsp.tensor(weight, requires_grad=True)]
    if with_bias:
        inputs.append(minipsp.tensor(bias, requires_grad=True))

    def fn(x, weight, bias=None):
        return F.conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation)

    with minipsp.kernels.use(variant):
        assert minipsp.gradcheck(fn, inputs)


# ---------------------------------------------------------------- cpu == reference

@given(config=conv_configs(max_n=3, max_c=4), dtype=st.sampled_from([np.float32, np.float64]),
       group_per_image=st.booleans(), parallel=st.booleans(), threaded=st.booleans())
def test_cpu_matches_reference(config, dtype, group_per_image, parallel, threaded):
    x, weight, bias, hyper = make_arrays(config, dtype)
    tol = TOLERANCE[dtype]
    dy = np.random.default_rng(1).standard_normal(output_shape(config)).astype(dtype)
    cols = reference.im2col(x, config["kernel_size"], *hyper)
    with pytest.MonkeyPatch.context() as patch:
        if group_per_image:  # one GEMM per image instead of one for the whole batch
            patch.setattr(cpu, "COLS_BUDGET", 1)
        if parallel:  # the prange loops, which otherwise only run on large arrays
            patch.setattr(cpu, "PARALLEL_MIN_SIZE", 0)
        if threaded:  # one image per worker thread (taken with 2 or more images), else never
            patch.setattr(cpu, "THREADED_MIN_COLS", 0)
            patch.setattr(cpu, "THREADED_MIN_IMAGES_PER_WORKER", 1)
        else:
            patch.setattr(cpu, "THREADED_MIN_COLS", float("inf"))
        np.testing.assert_array_equal(cpu.im2col(x, config["kernel_size"], *hyper), cols)
        np.testing.assert_allclose(cpu.col2im(cols, x.shape, config["kernel_size"], *hyper),
                                   reference.col2im(cols, x.shape, config["kernel_size"], *hyper), **tol)
        y = cpu.conv2d_forward(x, weight, bias, *hyper)
        grads = cpu.conv2d_backward(dy, x, weight, *hyper)
    assert y.dtype == dtype and all(g.dtype == dtype for g in grads)
    np.testing.assert_allclose(y, reference.conv2d_forward(x, weight, bias, *hyper), **tol)
    for got, expected in zip(grads, reference.conv2d_backward(dy, x, weight, *hyper)):
        np.testing.assert_allclose(got, expected, **tol)


@pytest.mark.parametrize("module", [reference, cpu, cuda_kernels], ids=["reference", "cpu", "cuda"])
def test_backward_skips_gradients_not_asked_for(module):
    rng = np.random.default_rng(0)
    x, weight = rng.standard_normal((1, 2, 4, 4)), rng.standard_normal((2, 2, 3, 3))
    dy = rng.standard_normal((1, 2, 2, 2))
    full = reference.conv2d_backward(dy, x, weight, (1, 1), (0, 0), (1, 1))
    dx, dw, db = module.conv2d_backward(dy, x, weight, (1, 1), (0, 0), (1, 1), needs_input_grad=False,
                                        needs_weight_grad=True, needs_bias_grad=False)
    assert dx is None and db is None
    np.testing.assert_allclose(dw, full[1], rtol=1e-12)
    dx, dw, db = module.conv2d_backward(dy, x, weight, (1, 1), (0, 0), (1, 1), needs_input_grad=True,
                                        needs_weight_grad=False, needs_bias_grad=True)
    assert dw is None
    np.testing.assert_allclose(dx, full[0], rtol=1e-12)
    np.testing.assert_allclose(db, full[2], rtol=1e-12)


@pytest.mark.parametrize("N", [1, 3])
def test_cpu_pointwise_conv_without_im2col(N):
    """A 1x1 conv, stride 1, no padding: a GEMM per image on x itself (no cols, no copy), any batch."""
    rng = np.random.default_rng(N)
    x, weight = rng.standard_normal((N, 5, 3, 4)), rng.standard_normal((6, 5, 1, 1))
    dy = rng.standard_normal((N, 6, 3, 4))
    hyper = (1, 1), (0, 0), (1, 1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cpu, "COLS_BUDGET", 1)
        y = cpu.conv2d_forward(x, weight, None, *hyper)
        grads = cpu.conv2d_backward(dy, x, weight, *hyper)
    np.testing.assert_allclose(y, np.einsum("oc,nchw->nohw", weight[:, :, 0, 0], x), rtol=1e-12)
    for got, expected in zip(grads, reference.conv2d_backward(dy, x, weight, *hyper)):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- cuda (simulator) == reference

tiny_configs = conv_configs(max_n=2, max_c=2, kernels=(1, 3), max_padding=2, dilations=(1, 2), max_extra=2)


@settings(max_examples=4)
@given(config=tiny_configs)
def test_cuda_im2col_col2im_match_reference(config):
    x, _, _, hyper = make_arrays(config, np.float32)
    cols = reference.im2col(x, config["kernel_size"], *hyper)
    np.testing.assert_array_equal(cuda_kernels.im2col(x, config["kernel_size"], *hyper), cols)
    np.testing.assert_allclose(cuda_kernels.col2im(cols, x.shape, config["kernel_size"], *hyper),
                               reference.col2im(cols, x.shape, config["kernel_size"], *hyper), rtol=1e-5,
                               atol=1e-5)


@settings(max_examples=3)
@given(config=tiny_configs)
def test_cuda_forward_backward_match_reference(config):
    x, weight, bias, hyper = make_arrays(config, np.float32)
    dy = np.random.default_rng(1).standard_normal(output_shape(config)).astype(np.float32)
    np.testing.assert_allclose(cuda_kernels.conv2d_forward(x, weight, bias, *hyper),
                               reference.conv2d_forward(x, weight, bias, *hyper), **TOLERANCE[np.float32])
    for got, expected in zip(cuda_kernels.conv2d_backward(dy, x, weight, *hyper),
                             reference.conv2d_backward(dy, x, weight, *hyper)):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, **TOLERANCE[np.float32])


# ---------------------------------------------------------------- parity with torch

@pytest.mark.parametrize("variant", ["reference", "cpu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
# Stride 3 too: the cpu loops copy with a step of 1, of 2 and of any other stride by separate loops.
@given(config=conv_configs(max_n=3, max_c=4, strides=(1, 2, 3)), with_bias=st.booleans())
def test_conv2d_matches_torch(variant, dtype, config, with_bias):
    x, weight, bias, (stride, padding, dilation) = make_arrays(config, dtype)
    values = [x, weight] + ([bias] if with_bias else [])
    ours = [minipsp.tensor(v, requires_grad=True) for v in values]
    theirs = [torch.tensor(v, requires_grad=True) for v in values]
    dy = np.random.default_rng(1).standard_normal(output_shape(config)).astype(dtype)
    with minipsp.kernels.use(variant):
        y = F.conv2d(*ours, stride=stride, padding=padding, dilation=dilation)
        y.backward(dy)
    y_torch = torch.nn.functional.conv2d(*theirs, stride=stride, padding=padding, dilation=dilation)
    y_torch.backward(torch.from_numpy(dy))
    tol = TOLERANCE[dtype]
    assert y.dtype == dtype
    np.testing.assert_allclose(y.numpy(), y_torch.detach().numpy(), **tol)
    for name, a, b in zip(["input", "weight", "bias"], ours, theirs):
        assert a.grad.dtype == dtype, name
        np.testing.assert_allclose(a.grad, b.grad.numpy(), **tol, err_msg=f"gradient of {name}")


def test_conv2d_noncontiguous_input_and_frozen_input():
    """A transposed (non-contiguous) input works; an input without requires_grad gets no gradient."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 5)).transpose(0, 1, 3, 2)  # a view, (2, 3, 5, 7)
    weight = rng.standard_normal((4, 3, 3, 3))
    ours_w = minipsp.tensor(weight, requires_grad=True)
    x_t = minipsp.tensor(x)
    y = F.conv2d(x_t, ours_w, stride=2, padding=1, dilation=(1, 2))
    y.sum().backward()
    theirs_w = torch.tensor(weight, requires_grad=True)
    y_torch = torch.nn.functional.conv2d(torch.tensor(x), theirs_w, stride=2, padding=1, dilation=(1, 2))
    y_torch.sum().backward()
    np.testing.assert_allclose(y.numpy(), y_torch.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ours_w.grad, theirs_w.grad.numpy(), rtol=1e-10, atol=1e-10)
    assert x_t.grad is None


@pytest.mark.parametrize("variant", ["reference", "cpu"])
def test_conv2d_empty_batch(variant):
    """N = 0 gives an empty output and zero weight/bias gradients, as in torch."""
    x = minipsp.tensor(np.zeros((0, 3, 6, 6)), requires_grad=True)
    weight = minipsp.tensor(np.ones((2, 3, 3, 3)), requires_grad=True)
    bias = minipsp.tensor(np.ones(2), requires_grad=True)
    with minipsp.kernels.use(variant):
        y = F.conv2d(x, weight, bias, padding=1)
        y.sum().backward()
    assert y.shape == (0, 2, 6, 6) and x.grad.shape == (0, 3, 6, 6)
    assert np.all(weight.grad == 0) and np.all(bias.grad == 0)


# ---------------------------------------------------------------- padding='same' | 'valid' (torch's strings)

@st.composite
def same_padding_configs(draw):
    """A stride-1 conv, kernel 1-4 and dilation 1-3 per axis (an odd total padding puts the extra zero below
    or on the right, as torch does), on an input as small as 1 x 1."""
    kernel_size = tuple(draw(st.integers(1, 4)) for _ in range(2))
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(2))
    return dict(N=draw(st.integers(1, 2)), C_in=draw(st.integers(1, 2)), C_out=draw(st.integers(1, 2)),
                H=draw(st.integers(1, 5)), W=draw(st.integers(1, 5)), kernel_size=kernel_size, stride=(1, 1),
                padding=(0, 0), dilation=dilation, seed=draw(st.integers(0, 2**16)))


@given(config=same_padding_configs(), with_bias=st.booleans())
def test_same_padding_gradcheck(config, with_bias):
    x, weight, bias, (_, _, dilation) = make_arrays(config)
    inputs = [minipsp.tensor(x, requires_grad=True), minipsp.tensor(weight, requires_grad=True)]
    if with_bias:
        inputs.append(minipsp.tensor(bias, requires_grad=True))
    y = F.conv2d(*inputs, padding="same", dilation=dilation)
    assert y.shape == (config["N"], config["C_out"], config["H"], config["W"])
    assert minipsp.gradcheck(lambda x, w, b=None: F.conv2d(x, w, b, padding="same", dilation=dilation), inputs)


@pytest.mark.filterwarnings("ignore:Using padding='same'")   # torch's note that it copies the input to pad it
@given(config=same_padding_configs(), mode=st.sampled_from(["same", "valid"]))
def test_padding_modes_match_torch(config, mode):
    x, weight, bias, (_, _, dilation) = make_arrays(config)
    if mode == "valid":
        assume(all(d * (k - 1) + 1 <= size for k, d, size in zip(config["kernel_size"], dilation,
                                                                  (config["H"], config["W"]))))
    ours = [minipsp.tensor(v, requires_grad=True) for v in (x, weight, bias)]
    theirs = [torch.tensor(v, requires_grad=True) for v in (x, weight, bias)]
    y = F.conv2d(*ours, padding=mode, dilation=dilation)
    y_torch = torch.nn.functional.conv2d(*theirs, padding=mode, dilation=dilation)
    dy = np.random.default_rng(config["seed"] + 1).standard_normal(y_torch.shape)
    y.backward(dy)
    y_torch.backward(torch.tensor(dy))
    np.testing.assert_allclose(y.numpy(), y_torch.detach().numpy(), **TOLERANCE[np.float64])
    for mine, torch_one in zip(ours, theirs):
        np.testing.assert_allclose(mine.grad, torch_one.grad.numpy(), **TOLERANCE[np.float64])


# ---------------------------------------------------------------- bad input

def _tensor(*shape, dtype=np.float32):
    return minipsp.tensor(np.zeros(shape, dtype=dtype))


BAD_INPUTS = {
    "input not 4-D or 3-D": (lambda: F.conv2d(_tensor(8, 8), _tensor(4, 3, 3, 3)),
                             ValueError, ["input", "4-D", "3-D", "(8, 8)"]),
    "weight not 4-D": (lambda: F.conv2d(_tensor(1, 3, 8, 8), _tensor(4, 3, 3)),
                       ValueError, ["weight", "4-D", "(4, 3, 3)"]),
    "channel mismatch": (lambda: F.conv2d(_tensor(1, 3, 8, 8), _tensor(4, 5, 3, 3)),
                         ValueError, ["3 channels", "5 input channels", "(4, 5, 3, 3)"]),
    "kernel larger than padded input": (lambda: F.conv2d(_tensor(1, 3, 4, 8), _tensor(4, 3, 3, 3), dilation=2),
                                        ValueError, ["height", "dilation 2", "5 pixels", "4 + 2*0 = 4"]),
    "stride 0": (lambda: F.conv2d(_tensor(1, 3, 8, 8), _tensor(4, 3, 3, 3), stride=(1, 0)),
                 ValueError, ["stride", ">= 1", "(1, 0)"]),
    "negative padding": (lambda: F.conv2d(_tensor(1, 3, 8, 8), _tensor(4, 3, 3, 3), padding=-1),
                         ValueError, ["padding", ">= 0", "(-1, -1)"]),
    "dilation 0": (lambda: F.conv2d(_tensor(1, 3, 8, 8), _tensor(4, 3, 3, 3), dilation=0),
                   ValueError, ["dilation", ">= 1", "(0, 0)"]),
    "stride not an int": (lambda: F.conv2d(_tensor(1, 3, 8, 8), _tensor(4, 3, 3, 3), stride=1.5),
                          TypeError, ["stride", "int or a pair", "1.5"]),
    "padding of three": (lambda: F.conv2d(_tensor(1, 3, 8, 8), _tensor(4, 3, 3, 3), padding=(1, 1, 1)),
                         TypeError, ["padding", "pair", "(1, 1, 1)"]),
    "bias shape": (lambda: F.conv2d(_tensor(1, 3, 8, 8), _tensor(4, 3, 3, 3), _tensor(3)),
                   ValueError, ["bias", "(4,)", "(3,)"]),
    "dtype mismatch": (lambda: F.conv2d(_tensor(1, 3, 8, 8), _tensor(4, 3, 3, 3, dtype=np.float64)),
                       TypeError, ["input", "weight", "float32", "float64"]),
    "groups": (lambda: F.conv2d(_tensor(1, 4, 8, 8), _tensor(4, 2, 3, 3), groups=2),
               NotImplementedError, ["groups", "groups=2"]),
    "array instead of tensor": (lambda: F.conv2d(np.zeros((1, 3, 8, 8)), _tensor(4, 3, 3, 3)),
                                TypeError, ["input", "Tensor", "ndarray"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_conv2d_bad_input_names_argument_and_values(case):
    call, error, fragments = BAD_INPUTS[case]
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert message.startswith("conv2d:")
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from {message!r}"


# ---------------------------------------------------------------- real GPU (skipped without one)

GPU_CONFIGS = [
    dict(N=2, C_in=3, C_out=4, H=11, W=9, kernel_size=(3, 3), stride=(1, 1), padding=(2, 2),
         dilation=(2, 2), seed=0),
    dict(N=3, C_in=5, C_out=2, H=13, W=10, kernel_size=(7, 3), stride=(2, 1), padding=(3, 0),
         dilation=(1, 4), seed=1),
    dict(N=1, C_in=4, C_out=6, H=8, W=8, kernel_size=(1, 1), stride=(2, 2), padding=(0, 1),
         dilation=(1, 1), seed=2),
]


@pytest.mark.gpu
@pytest.mark.parametrize("config", GPU_CONFIGS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_kernels_on_gpu_match_reference(config, dtype):
    cupy = pytest.importorskip("cupy")
    x, weight, bias, hyper = make_arrays(config, dtype)
    dy = np.random.default_rng(1).standard_normal(output_shape(config)).astype(dtype)
    gx, gw, gb, gdy = (cupy.asarray(a) for a in (x, weight, bias, dy))
    tol = TOLERANCE[dtype]
    cols = reference.im2col(x, config["kernel_size"], *hyper)
    np.testing.assert_array_equal(cupy.asnumpy(cuda_kernels.im2col(gx, config["kernel_size"], *hyper)), cols)
    np.testing.assert_allclose(
        cupy.asnumpy(cuda_kernels.col2im(cupy.asarray(cols), x.shape, config["kernel_size"], *hyper)),
        reference.col2im(cols, x.shape, config["kernel_size"], *hyper), **tol)
    np.testing.assert_allclose(cupy.asnumpy(cuda_kernels.conv2d_forward(gx, gw, gb, *hyper)),
                               reference.conv2d_forward(x, weight, bias, *hyper), **tol)
    for got, expected in zip(cuda_kernels.conv2d_backward(gdy, gx, gw, *hyper),
                             reference.conv2d_backward(dy, x, weight, *hyper)):
        assert isinstance(got, cupy.ndarray)
        np.testing.assert_allclose(cupy.asnumpy(got), expected, **tol)


@pytest.mark.gpu
@pytest.mark.parametrize("config", GPU_CONFIGS)
def test_conv2d_gradcheck_on_gpu(config):
    pytest.importorskip("cupy")
    x, weight, bias, (stride, padding, dilation) = make_arrays(config)
    inputs = [minipsp.tensor(v, requires_grad=True, device="cuda") for v in (x, weight, bias)]

    def fn(x, weight, bias):
        return F.conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation)

    assert fn(*inputs).device == "cuda"
    assert minipsp.gradcheck(fn, inputs)


def test_cpu_pointwise_conv_on_an_empty_batch():
    """N = 0 through the 1x1 GEMM path: empty y, dx, and a zero dw."""
    x, weight = np.zeros((0, 5, 3, 4)), np.ones((6, 5, 1, 1))
    hyper = (1, 1), (0, 0), (1, 1)
    assert cpu.conv2d_forward(x, weight, None, *hyper).shape == (0, 6, 3, 4)
    dx, dw, db = cpu.conv2d_backward(np.zeros((0, 6, 3, 4)), x, weight, *hyper)
    assert dx.shape == x.shape and np.all(dw == 0) and dw.shape == weight.shape and np.all(db == 0)


def test_im2col_goes_one_image_per_thread_on_large_batches(monkeypatch):
    """PSPNet's strided convs (8 images, >= 64 K elements of cols each) take the worker threads, with
    one BLAS thread inside and the BLAS's count put back after; gradient checks' tiny arrays do not."""
    from minipsp.kernels.conv2d import threads
    assert threads.pool() is not None and threads.workers() >= 2
    get, _ = threads._blas
    before, seen = get(), []
    real = cpu._im2col_serial

    def spy(*args):
        seen.append(get())
        return real(*args)
    monkeypatch.setattr(cpu, "_im2col_serial", spy)
    rng = np.random.default_rng(0)
    x, weight = rng.standard_normal((4, 8, 66, 66)), rng.standard_normal((5, 8, 3, 3))
    hyper = (2, 2), (1, 1), (1, 1)
    y = cpu.conv2d_forward(x, weight, None, *hyper)
    dx, dw, _ = cpu.conv2d_backward(np.ones_like(y), x, weight, *hyper)
    assert seen == [1] * 8                      # 4 images forward, 4 for dw: each in a worker
    assert get() == before
    np.testing.assert_allclose(y, reference.conv2d_forward(x, weight, None, *hyper), rtol=1e-10, atol=1e-10)
    for got, expected in zip((dx, dw), reference.conv2d_backward(np.ones_like(y), x, weight, *hyper)):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
    seen.clear()
    cpu.conv2d_forward(x[:1], weight, None, *hyper)       # one image: the plain path, the BLAS's threads
    assert seen == [before]
    seen.clear()
    wide = rng.standard_normal((1200, 8, 3, 3))           # 86 K weights, 78 K of cols an image: grouped
    cpu.conv2d_forward(x, wide, None, *hyper)
    assert seen == [before]


def test_threaded_im2col_weight_gradient_is_the_same_every_run(monkeypatch):
    """dw sums the images' products in image order whichever worker ran each, so two runs agree to the
    bit (training is reproducible), and agree with the reference."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 8, 40, 40)).astype(np.float32)
    weight = rng.standard_normal((6, 8, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((8, 6, 20, 20)).astype(np.float32)
    hyper = (2, 2), (1, 1), (1, 1)
    monkeypatch.setattr(cpu, "THREADED_MIN_COLS", 0)
    runs = [cpu.conv2d_backward(dy, x, weight, *hyper)[1] for _ in range(6)]
    for dw in runs[1:]:
        np.testing.assert_array_equal(dw, runs[0])
    np.testing.assert_allclose(runs[0], reference.conv2d_backward(dy, x, weight, *hyper)[1], rtol=1e-4, atol=1e-4)
