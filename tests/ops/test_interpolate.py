"""interpolate (bilinear, nearest): gradient checks, cpu/cuda kernels vs reference, parity with torch."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from minipsp.kernels.interpolate import reference

import minipsp
import minipsp.nn.functional as F
from minipsp import kernels

SCALES = [0.5, 0.6, 0.75, 1.1, 1.5, 2.0, 2.5, 3.0, 8.0]


@st.composite
def resize_cases(draw, max_side=5, max_out=9):
    """A shape (N,C,H,W) and a target given either as size=(OH,OW) or as a scale_factor."""
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)),
             draw(st.integers(1, max_side)), draw(st.integers(1, max_side)))
    if draw(st.booleans()):
        return shape, {"size": (draw(st.integers(1, max_out)), draw(st.integers(1, max_out)))}
    scale = draw(st.sampled_from(SCALES))
    if min(int(np.floor(shape[2] * scale)), int(np.floor(shape[3] * scale))) < 1:
        scale = 2.0
    return shape, {"scale_factor": scale}


def random_array(shape, dtype, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def out_size_and_scales(shape, resize):
    """What F.interpolate passes to the kernels for a size= or scale_factor= argument."""
    if "size" in resize:
        return resize["size"], None
    s = resize["scale_factor"]
    return (int(np.floor(shape[2] * s)), int(np.floor(shape[3] * s))), (s, s)


# -- gradient checks -------------------------------------------------------------------------
@given(resize_cases(), st.booleans(), st.sampled_from(["reference", "cpu"]), st.integers(0, 2**16))
def test_bilinear_gradcheck(case, align_corners, variant, seed):
    shape, resize = case
    x = minipsp.tensor(random_array(shape, np.float64, seed), requires_grad=True)
    with kernels.use(variant):
        assert minipsp.gradcheck(
            lambda t: F.interpolate(t, mode="bilinear", align_corners=align_corners, **resize), [x])


@given(resize_cases(), st.sampled_from(["reference", "cpu"]), st.integers(0, 2**16))
def test_nearest_gradcheck(case, variant, seed):
    shape, resize = case
    x = minipsp.tensor(random_array(shape, np.float64, seed), requires_grad=True)
    with kernels.use(variant):
        assert minipsp.gradcheck(lambda t: F.interpolate(t, mode="nearest", **resize), [x])


def test_bilinear_backward_conserves_the_gradient():
    # The 4 weights of every output sum to 1, so the scatter-add moves all of dy into dx.
    dy = random_array((2, 3, 40, 24), np.float64, 0)
    for align_corners in (True, False):
        dx = kernels.load("interpolate", "cpu").bilinear_backward(dy, (5, 3), align_corners)
        np.testing.assert_allclose(dx.sum(axis=(2, 3)), dy.sum(axis=(2, 3)), rtol=1e-12)


# -- parity with torch -----------------------------------------------------------------------
def torch_interpolate(x, dy, mode, align_corners, resize):
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.interpolate(xt, mode=mode, align_corners=align_corners, **resize)
    yt.backward(torch.tensor(dy))
    return yt.detach().numpy(), xt.grad.numpy()


@given(resize_cases(max_side=9, max_out=20), st.sampled_from(["bilinear-True", "bilinear-False", "nearest"]),
       st.sampled_from([np.float32, np.float64]), st.integers(0, 2**16))
def test_matches_torch(case, mode_name, dtype, seed):
    shape, resize = case
    mode, _, corners = mode_name.partition("-")
    align_corners = None if mode == "nearest" else corners == "True"
    x = random_array(shape, dtype, seed)
    X = minipsp.tensor(x, requires_grad=True)
    y = F.interpolate(X, mode=mode, align_corners=align_corners, **resize)
    dy = random_array(y.shape, dtype, seed + 1)
    y.backward(dy)
    y_torch, dx_torch = torch_interpolate(x, dy, mode, align_corners, resize)
    assert y.shape == y_torch.shape
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y.numpy(), y_torch, **tol)
    np.testing.assert_allclose(X.grad, dx_torch, **tol)


def test_pspnet_upsampling_matches_torch():
    # The case PSPNet runs: x8 with align_corners=True, (H-1) % 8 == 0 sizes (60 -> 473 style).
    x = random_array((2, 3, 7, 9), np.float32, 3)
    X = minipsp.tensor(x, requires_grad=True)
    y = F.interpolate(X, size=(49, 65), mode="bilinear", align_corners=True)
    dy = random_array(y.shape, np.float32, 4)
    y.backward(dy)
    y_torch, dx_torch = torch_interpolate(x, dy, "bilinear", True, {"size": (49, 65)})
    np.testing.assert_allclose(y.numpy(), y_torch, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(X.grad, dx_torch, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape, mode, align_corners, resize", [
    ((1, 1, 5, 9), "bilinear", False, {"scale_factor": 1.1}),   # H: 5 -> 5 is copied, W: 9 -> 9 too
    ((1, 2, 3, 10), "bilinear", False, {"scale_factor": 1.277}),  # only H keeps its size
    ((1, 1, 10, 7), "nearest", None, {"size": (6, 21)}),         # 3 * (10/6 in float32) rounds to 5
    ((1, 1, 7, 5), "nearest", None, {"scale_factor": 0.3}),
    ((2, 1, 1, 1), "bilinear", True, {"size": (4, 1)}),
])
def test_awkward_cases_match_torch(shape, mode, align_corners, resize):
    x = random_array(shape, np.float64, 7)
    X = minipsp.tensor(x, requires_grad=True)
    y = F.interpolate(X, mode=mode, align_corners=align_corners, **resize)
    dy = random_array(y.shape, np.float64, 8)
    y.backward(dy)
    y_torch, dx_torch = torch_interpolate(x, dy, mode, align_corners, resize)
    np.testing.assert_allclose(y.numpy(), y_torch, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(X.grad, dx_torch, rtol=1e-10, atol=1e-12)


def test_nearest_resizes_integer_labels_like_torch():
    labels = np.random.default_rng(0).integers(0, 256, (2, 1, 7, 5)).astype(np.uint8)
    out = F.interpolate(minipsp.tensor(labels), size=(11, 13), mode="nearest")
    assert out.dtype == np.uint8 and not out.requires_grad
    expected = torch.nn.functional.interpolate(torch.tensor(labels), size=(11, 13), mode="nearest").numpy()
    np.testing.assert_array_equal(out.numpy(), expected)


# -- kernels: cpu and cuda (simulator) vs the reference --------------------------------------
def check_variant_matches_reference(name, shape, resize, align_corners, dtype, seed):
    k = kernels.load("interpolate", name)
    size, scales = out_size_and_scales(shape, resize)
    x = random_array(shape, dtype, seed)
    dy = random_array(shape[:2] + tuple(size), dtype, seed + 1)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(k.bilinear_forward(x, size, align_corners, scales),
                               reference.bilinear_forward(x, size, align_corners, scales), **tol)
    np.testing.assert_allclose(k.bilinear_backward(dy, shape[2:], align_corners, scales),
                               reference.bilinear_backward(dy, shape[2:], align_corners, scales), **tol)
    np.testing.assert_array_equal(k.nearest_forward(x, size, scales), reference.nearest_forward(x, size, scales))
    np.testing.assert_allclose(k.nearest_backward(dy, shape[2:], scales),
                               reference.nearest_backward(dy, shape[2:], scales), **tol)


@given(resize_cases(max_side=9, max_out=20), st.booleans(), st.sampled_from([np.float32, np.float64]),
       st.integers(0, 2**16), st.booleans())
def test_cpu_matches_reference(case, align_corners, dtype, seed, dense):
    """Both of the cpu backward's paths: the two GEMMs by resize matrices and the scatter loop."""
    cpu = kernels.load("interpolate", "cpu")
    saved = cpu.DENSE_MAX_SIDE
    cpu.DENSE_MAX_SIDE = 10**9 if dense else 0
    try:
        check_variant_matches_reference("cpu", *case, align_corners, dtype, seed)
    finally:
        cpu.DENSE_MAX_SIDE = saved


def test_resize_matrix_is_the_forward():
    """y = Rh x Rw^T plane by plane, for PSPNet's upsampling (align_corners) and torch's default."""
    cpu = kernels.load("interpolate", "cpu")
    x = random_array((2, 3, 6, 5), np.float64, 0)
    for align_corners in (True, False):
        Rh = cpu.resize_matrix(reference.bilinear_source(6, 13, align_corners), 6, np.float64)
        Rw = cpu.resize_matrix(reference.bilinear_source(5, 11, align_corners), 5, np.float64)
        np.testing.assert_allclose(Rh @ x @ Rw.T, reference.bilinear_forward(x, (13, 11), align_corners), atol=1e-12)


@settings(max_examples=6)
@given(resize_cases(max_side=3, max_out=4), st.booleans(), st.integers(0, 2**16))
def test_cuda_simulator_matches_reference(case, align_corners, seed):
    (n, c, h, w), resize = case
    check_variant_matches_reference("cuda", (1, 1, h, w), resize, align_corners, np.float32, seed)


def test_source_indices_follow_torch_conventions():
    # align_corners=True: corners land on corners; 1 -> out samples pixel 0.
    i0, i1, lam = reference.bilinear_source(3, 5, True)
    np.testing.assert_allclose(i0 + lam, [0, 0.5, 1, 1.5, 2])
    assert reference.bilinear_source(4, 1, True)[0].tolist() == [0]
    # align_corners=False: centres aligned, clamped at 0 on the left, at in-1 on the right.
    i0, i1, lam = reference.bilinear_source(2, 4, False)
    np.testing.assert_allclose(i0 + lam, [0, 0.25, 0.75, 1.25])
    assert i1.tolist() == [1, 1, 1, 1]
    # scale_factor given: spacing 1 / scale, not in / out (here 4 / 9 versus 1 / 2.4).
    _, _, lam = reference.bilinear_source(4, 9, False, scale=2.4)
    assert lam[1] == pytest.approx(1.5 / 2.4 - 0.5)
    assert reference.nearest_source(3, 7).tolist() == [0, 0, 0, 1, 1, 2, 2]


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, error, message", [
    ({"size": 4, "scale_factor": 2.0}, ValueError, "exactly one of size and scale_factor"),
    ({}, ValueError, "exactly one of size and scale_factor"),
    ({"size": 4, "mode": "bicubic"}, ValueError, "mode must be one of"),
    ({"size": 4, "mode": "nearest", "align_corners": True}, ValueError, "align_corners can only be set"),
    ({"size": (4, 4, 4)}, TypeError, "size must be an int or a pair"),
    ({"size": 2.5}, TypeError, "size must be an int or a pair"),
    ({"size": 0}, ValueError, "size must be positive"),
    ({"scale_factor": -2.0}, ValueError, "scale_factor must be positive"),
    ({"scale_factor": 0.1}, ValueError, "gives an empty output"),
])
def test_bad_arguments_are_refused(kwargs, error, message):
    x = minipsp.zeros(1, 1, 3, 3)
    with pytest.raises(error, match=message):
        F.interpolate(x, **kwargs)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match=r"must be 4-D \(N, C, H, W\); got shape \(3, 3\)"):
        F.interpolate(minipsp.zeros(3, 3), size=4)
    with pytest.raises(TypeError, match="needs a floating-point input; got dtype int64"):
        F.interpolate(minipsp.tensor(np.zeros((1, 1, 2, 2), dtype=np.int64)), size=4, mode="bilinear")
    with pytest.raises(TypeError, match="input must be a Tensor"):
        F.interpolate(np.zeros((1, 1, 2, 2)), size=4)


def test_default_mode_is_nearest_like_torch():
    x = random_array((1, 1, 3, 4), np.float64, 5)
    np.testing.assert_array_equal(F.interpolate(minipsp.tensor(x), scale_factor=2).numpy(),
                                  torch.nn.functional.interpolate(torch.tensor(x), scale_factor=2).numpy())


# -- real GPU (skipped without one) -----------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("align_corners", [True, False])
def test_gpu_kernels_match_reference(align_corners):
    import cupy

    k = kernels.load("interpolate", "cuda")
    x = random_array((2, 3, 13, 17), np.float32, 0)
    dy = random_array((2, 3, 97, 129), np.float32, 1)
    tol = dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cupy.asnumpy(k.bilinear_forward(cupy.asarray(x), (97, 129), align_corners)),
                               reference.bilinear_forward(x, (97, 129), align_corners), **tol)
    np.testing.assert_allclose(cupy.asnumpy(k.bilinear_backward(cupy.asarray(dy), (13, 17), align_corners)),
                               reference.bilinear_backward(dy, (13, 17), align_corners), **tol)
    np.testing.assert_array_equal(cupy.asnumpy(k.nearest_forward(cupy.asarray(x), (30, 31))),
                                  reference.nearest_forward(x, (30, 31)))
    np.testing.assert_allclose(cupy.asnumpy(k.nearest_backward(cupy.asarray(dy), (13, 17))),
                               reference.nearest_backward(dy, (13, 17)), **tol)


@pytest.mark.gpu
@pytest.mark.parametrize("mode, align_corners", [("bilinear", True), ("bilinear", False), ("nearest", None)])
def test_gpu_gradcheck(mode, align_corners):
    x = minipsp.tensor(random_array((1, 2, 3, 4), np.float64, 0), requires_grad=True).to("cuda")
    x = x.detach().requires_grad_()
    assert minipsp.gradcheck(lambda t: F.interpolate(t, size=(5, 7), mode=mode, align_corners=align_corners), [x])
