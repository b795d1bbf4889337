"""conv2d's cuda variant (under Numba's simulator): images in groups, and col2im's sums.

The whole-batch cases are in test_conv2d.py. Here COLS_BUDGET is made tiny so that a small batch
goes through in several groups (as PSPNet's layer4 and head do on a GPU), and forward and every
gradient must still equal the reference.
"""

import numpy as np
import pytest
from minipsp.kernels.conv2d import cuda, reference

HYPER = (2, 1), (1, 2), (1, 2)   # stride, padding, dilation


def _arrays(N, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, 2, 7, 6)).astype(dtype)
    weight = rng.standard_normal((3, 2, 3, 2)).astype(dtype)
    bias = rng.standard_normal(3).astype(dtype)
    OH, OW = (reference.output_size(s, k, st, p, d)
              for s, k, st, p, d in zip((7, 6), (3, 2), *HYPER))
    dy = rng.standard_normal((N, 3, OH, OW)).astype(dtype)
    return x, weight, bias, dy


@pytest.mark.parametrize("images_per_group, groups", [(1, 3), (2, 2), (3, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_groups_of_images_equal_reference(monkeypatch, images_per_group, groups, dtype):
    x, weight, bias, dy = _arrays(3, dtype)
    OH, OW = dy.shape[2:]
    cols_bytes_per_image = weight[0].size * OH * OW * x.itemsize
    monkeypatch.setattr(cuda, "COLS_BUDGET", images_per_group * cols_bytes_per_image)
    assert len(cuda._image_groups(3, cols_bytes_per_image)) == groups

    launched = []
    fill = cuda._fill_cols
    monkeypatch.setattr(cuda, "_fill_cols", lambda x, cols, g: (launched.append(x.shape[0]), fill(x, cols, g)))
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    y = cuda.conv2d_forward(x, weight, bias, *HYPER)
    assert sum(launched) == 3 and len(launched) == groups and max(launched) == images_per_group
    np.testing.assert_allclose(y, reference.conv2d_forward(x, weight, bias, *HYPER), **tol)
    assert y.dtype == dtype and y.flags.c_contiguous
    expected_grads = reference.conv2d_backward(dy, x, weight, *HYPER)
    for got, expected in zip(cuda.conv2d_backward(dy, x, weight, *HYPER), expected_grads):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, expected, **tol)


def test_groups_with_only_some_gradients(monkeypatch):
    x, weight, _, dy = _arrays(3, np.float64)
    monkeypatch.setattr(cuda, "COLS_BUDGET", 1)  # one image per group
    full = reference.conv2d_backward(dy, x, weight, *HYPER)
    dx, dw, db = cuda.conv2d_backward(dy, x, weight, *HYPER, needs_input_grad=False, needs_bias_grad=False)
    assert dx is None and db is None
    np.testing.assert_allclose(dw, full[1], rtol=1e-12)
    dx, dw, db = cuda.conv2d_backward(dy, x, weight, *HYPER, needs_weight_grad=False)
    assert dw is None
    np.testing.assert_allclose(dx, full[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, full[2], rtol=1e-12)


def test_budget_fits_pspnet_layer4():
    """The figures in COLS_BUDGET's comment: at batch 8, 473 px (60x60 maps), a 3x3 conv on 512 channels
    goes in 2 groups of 4 images (265 MB of cols each) instead of one 531 MB cols; the head's 3x3 conv
    on 4096 channels (531 MB per image) goes one image at a time instead of 4.2 GB at once."""
    per_image = 512 * 9 * 60 * 60 * 4
    assert round(8 * per_image / 1e6) == 531
    assert cuda._image_groups(8, per_image) == [(0, 4), (4, 8)]
    head_per_image = 4096 * 9 * 60 * 60 * 4
    assert round(8 * head_per_image / 1e9, 1) == 4.2
    assert cuda._image_groups(8, head_per_image) == [(n, n + 1) for n in range(8)]


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_col2im_keeps_an_inf_or_nan_to_the_pixels_it_came_from(bad):
    """col2im's sums start from a zero of cols' dtype, not from cols[0, 0] * 0 (NaN for inf or NaN)."""
    x_shape, kernel_size, hyper = (1, 2, 5, 4), (3, 3), ((1, 1), (0, 0), (1, 1))
    cols = np.random.default_rng(0).standard_normal((2 * 9, 3 * 2)).astype(np.float32)  # OH, OW = 3, 2
    cols[0, 0] = bad  # tap (0, 0) of output (0, 0): it came from pixel (0, 0) of channel 0
    got = cuda.col2im(cols, x_shape, kernel_size, *hyper)
    expected = reference.col2im(cols, x_shape, kernel_size, *hyper)
    assert np.isfinite(got).sum() == got.size - 1
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)  # equal_nan: NaN == NaN and inf == inf
