"""Bad and unusual input on the Python API (issue 13, section 3): each gets torch's answer or a clear error.

- dtypes the float kernels cannot compute in (int8 would wrap, bool would be an OR of ANDs, float16 is
  not in Numba) are refused by every op, naming the op and the dtype;
- empty batches and empty channel counts give torch's empty results (or a refusal saying why);
- non-finite scale factors, non-number tensors and out-of-range seeds are refused at the door;
- the PyTorch spellings a user types (padding='same', label_smoothing=, recompute_scale_factor=,
  antialias=False, unbatched (C, H, W) input, one-element stride=[2]) work as in torch.
Gradient checks and torch parity over Hypothesis-drawn shapes for 'same' padding and label smoothing
are in test_conv2d.py and test_cross_entropy.py.
"""

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import minipsp
import minipsp.nn as nn
import minipsp.nn.functional as F


def _t(*shape, dtype=np.float32, requires_grad=False):
    return minipsp.tensor(np.ones(shape, dtype=dtype), requires_grad=requires_grad)


def _close(ours, theirs, tol=1e-10):
    np.testing.assert_allclose(np.asarray(ours), theirs.detach().numpy(), rtol=tol, atol=tol)


# ---------------------------------------------------------------- dtypes the kernels cannot compute in
OPS = {
    "conv2d": lambda dtype: F.conv2d(_t(1, 3, 4, 4, dtype=dtype), _t(2, 3, 3, 3, dtype=dtype)),
    "batch_norm": lambda dtype: F.batch_norm(_t(2, 3, 4, 4, dtype=dtype), np.zeros(3, np.float32),
                                             np.ones(3, np.float32)),
    "max_pool2d": lambda dtype: F.max_pool2d(_t(1, 3, 4, 4, dtype=dtype), 2),
    "adaptive_avg_pool2d": lambda dtype: F.adaptive_avg_pool2d(_t(1, 3, 4, 4, dtype=dtype), 2),
    "interpolate": lambda dtype: F.interpolate(_t(1, 3, 4, 4, dtype=dtype), size=6, mode="bilinear"),
    "cross_entropy": lambda dtype: F.cross_entropy(_t(2, 3, dtype=dtype), np.zeros(2, np.int64)),
    "nll_loss": lambda dtype: F.nll_loss(_t(2, 3, dtype=dtype), np.zeros(2, np.int64)),
    "log_softmax": lambda dtype: F.log_softmax(_t(2, 3, dtype=dtype)),
    "dropout": lambda dtype: F.dropout(_t(2, 3, dtype=dtype)),
    "dropout2d": lambda dtype: F.dropout2d(_t(1, 3, 2, 2, dtype=dtype)),
}


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.bool_, np.float16])
def test_float_ops_refuse_other_dtypes_naming_them(op, dtype):
    with pytest.raises(TypeError) as info:
        OPS[op](dtype)
    message = str(info.value)
    assert message.startswith(f"{op}:") and str(np.dtype(dtype)) in message and ".float()" in message


def test_int8_conv2d_no_longer_wraps_around():
    """The issue's case: 100 * 100 * 27 = 270000 came out as -80."""
    x, weight = _t(1, 3, 3, 3, dtype=np.int8), _t(1, 3, 3, 3, dtype=np.int8)
    x.data[...] = weight.data[...] = 100
    with pytest.raises(TypeError, match=r"conv2d: input must be floating point .*got dtype int8"):
        F.conv2d(x, weight)
    with pytest.raises(TypeError, match=r"conv2d: input has dtype float16, which minipsp does not support"):
        F.conv2d(_t(1, 3, 3, 3, dtype=np.float16), _t(1, 3, 3, 3, dtype=np.float16))


def test_relu_takes_integers_as_torch_but_not_bool_or_float16():
    np.testing.assert_array_equal(F.relu(minipsp.tensor(np.array([-2, 3], np.int8))).numpy(), [0, 3])
    for dtype in (np.bool_, np.float16):
        with pytest.raises(TypeError, match=f"relu: input .*{np.dtype(dtype)}"):
            F.relu(_t(2, dtype=dtype))


def test_nearest_interpolation_still_takes_label_maps():
    labels = minipsp.tensor(np.arange(4, dtype=np.int64).reshape(1, 1, 2, 2))
    assert F.interpolate(labels, size=4).dtype == np.int64


@pytest.mark.parametrize("data, kind", [(["a", "b"], "strings"), ([b"x"], "bytes"), ([object()], "Python objects"),
                                        ([1j], "complex"), (np.zeros(2, "M8[s]"), "dates")])
def test_tensors_of_non_numbers_are_refused_at_construction(data, kind):
    for make in (minipsp.tensor, minipsp.Tensor):
        with pytest.raises(TypeError, match=f"Tensor: data must be numbers .*{kind}"):
            make(data)


# ---------------------------------------------------------------- empty batches and channels
def test_conv2d_empty_channels_are_refused_with_the_reason_as_torch_does():
    with pytest.raises(RuntimeError):  # torch refuses 0 output channels too
        TF.conv2d(torch.ones(1, 3, 5, 5), torch.ones(0, 3, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d: weight \(0, 3, 3, 3\) has 0 output channels"):
        F.conv2d(_t(1, 3, 5, 5), _t(0, 3, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d: input \(1, 0, 5, 5\) has 0 channels"):
        F.conv2d(_t(1, 0, 5, 5), _t(2, 0, 3, 3))


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(0, 3), (0, 3, 2, 2), (2, 0), (2, 0, 2, 2), (2, 3, 0, 2)],
                         ids=["N=0", "N=0 image", "K=0", "K=0 image", "H=0"])
def test_losses_of_empty_inputs_match_torch(name, reduction, shape):
    """torch's shapes and values; 'mean' of no pixel is 0 here (torch: NaN), as for all-ignored batches."""
    target = np.full((shape[0],) + shape[2:], 255, np.int64)
    X = _t(*shape, dtype=np.float64, requires_grad=True)
    loss = getattr(F, name)(X, target, reduction=reduction)
    loss.backward(np.ones(loss.shape))
    xt = torch.ones(shape, dtype=torch.float64, requires_grad=True)
    loss_torch = getattr(TF, name)(xt, torch.tensor(target), ignore_index=255, reduction=reduction)
    assert loss.shape == tuple(loss_torch.shape) and X.grad.shape == shape and not np.any(X.grad)
    if reduction == "mean":
        assert np.isnan(loss_torch.item()) and loss.item() == 0
    else:
        _close(loss.numpy(), loss_torch)


def test_a_label_with_no_class_to_be_is_refused():
    with pytest.raises(ValueError, match=r"cross_entropy: target holds label 0, outside \[0, 0\)"):
        F.cross_entropy(_t(2, 0), np.zeros(2, np.int64))


@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (2, 0, 4, 4), (0, 3)])
def test_batch_norm_eval_of_an_empty_input_matches_torch(shape):
    C = shape[1]
    x = _t(*shape, dtype=np.float64, requires_grad=True)
    weight, bias = _t(C, dtype=np.float64, requires_grad=True), _t(C, dtype=np.float64, requires_grad=True)
    y = F.batch_norm(x, np.zeros(C), np.ones(C), weight, bias)
    y.sum().backward()
    y_torch = TF.batch_norm(torch.ones(shape, dtype=torch.float64), torch.zeros(C, dtype=torch.float64),
                            torch.ones(C, dtype=torch.float64))
    assert y.shape == tuple(y_torch.shape) and y.dtype == np.float64 and x.grad.shape == shape
    assert weight.grad.shape == (C,) and not np.any(weight.grad) and not np.any(bias.grad)


def test_batch_norm_training_on_an_empty_batch_says_why():
    with pytest.raises(ValueError, match=r"batch_norm: Expected more than 1 value per channel when training"):
        F.batch_norm(_t(0, 3, 4, 4), None, None, training=True)


def test_pspnet_eval_on_an_empty_batch_gives_an_empty_prediction():
    from minipsp.models.pspnet import PSPNet

    minipsp.manual_seed(0)
    model = PSPNet(layers=18, classes=3, width=4).eval()
    with minipsp.no_grad():
        y = model(minipsp.zeros(0, 3, 33, 33))
    assert y.shape == (0, 3, 33, 33)


# ---------------------------------------------------------------- interpolate
@pytest.mark.parametrize("scale", [float("nan"), float("inf"), -float("inf"), (2.0, float("nan"))])
def test_interpolate_refuses_non_finite_scale_factors(scale):
    with pytest.raises(ValueError, match=r"interpolate: scale_factor must be positive and finite"):
        F.interpolate(_t(1, 1, 4, 4), scale_factor=scale)


@pytest.mark.parametrize("recompute", [None, False, True])
@pytest.mark.parametrize("mode, align_corners, scale", [("bilinear", False, 2.5), ("bilinear", True, (1.7, 0.6)),
                                                        ("nearest", None, (2.3, 1.5))])
def test_interpolate_recompute_scale_factor_matches_torch(recompute, mode, align_corners, scale):
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 7))
    kwargs = dict(scale_factor=scale, mode=mode, align_corners=align_corners, recompute_scale_factor=recompute,
                  antialias=False)
    _close(F.interpolate(minipsp.tensor(x), **kwargs).numpy(), TF.interpolate(torch.tensor(x), **kwargs))


def test_interpolate_refuses_what_it_does_not_implement_saying_what_to_write():
    with pytest.raises(NotImplementedError, match=r"only antialias=False is implemented.*Write antialias=False"):
        F.interpolate(_t(1, 1, 4, 4), size=2, mode="bilinear", antialias=True)
    with pytest.raises(ValueError, match=r"recompute_scale_factor is not meaningful with an explicit size"):
        F.interpolate(_t(1, 1, 4, 4), size=2, recompute_scale_factor=True)
    with pytest.raises(TypeError, match=r"recompute_scale_factor must be None, False or True; got 'yes'"):
        F.interpolate(_t(1, 1, 4, 4), scale_factor=2, recompute_scale_factor="yes")


# ---------------------------------------------------------------- manual_seed
def _draws():
    return minipsp.rand(4).numpy()


def test_negative_seeds_are_their_unsigned_twins_as_in_torch():
    assert torch.manual_seed(-1).initial_seed() == 2**64 - 1
    minipsp.manual_seed(-1)
    first = _draws()
    minipsp.manual_seed(2**64 - 1)
    np.testing.assert_array_equal(_draws(), first)
    minipsp.manual_seed(-2**63)
    assert minipsp.random.get_rng_state()["seed"] == 2**63
    minipsp.manual_seed(0)
    assert not np.array_equal(_draws(), first)


@pytest.mark.parametrize("seed, error, fragment", [(2**64, ValueError, "between -2\\*\\*63 and 2\\*\\*64 - 1"),
                                                   (-2**63 - 1, ValueError, "got -9223372036854775809"),
                                                   (1.5, TypeError, "must be an int; got float"),
                                                   (True, TypeError, "must be an int; got bool")])
def test_seeds_outside_64_bits_are_refused(seed, error, fragment):
    with pytest.raises(error, match=f"manual_seed: seed {fragment}" if error is TypeError else fragment):
        minipsp.manual_seed(seed)


# ---------------------------------------------------------------- weighted 'mean' divides by any non-zero total
@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("weight", [[-1.0, -2.0, -0.5, 1.0], [1.0, -3.0, 0.5, 1.0]], ids=["negative", "mixed"])
def test_weighted_mean_with_a_negative_total_matches_torch(name, weight):
    rng = np.random.default_rng(3)
    x, target = rng.standard_normal((2, 4, 3, 3)), np.array([0, 1, 2, 255] * 4 + [1, 1])[:18].reshape(2, 3, 3)
    weight = np.array(weight)
    X, xt = minipsp.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    loss = getattr(F, name)(X, target, weight=weight)
    loss_torch = getattr(TF, name)(xt, torch.tensor(target), weight=torch.tensor(weight), ignore_index=255)
    assert (weight[target[target != 255]]).sum() < 0
    loss.backward()
    loss_torch.backward()
    _close(loss.numpy(), loss_torch)
    _close(X.grad, xt.grad)


def test_weighted_mean_with_a_zero_total_is_zero():
    """torch gives inf here (x / 0); we keep the 0 of 'no weight to average over'."""
    X = minipsp.tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    loss = F.cross_entropy(X, np.array([0, 1, 2]), weight=np.array([1.0, -1.0, 0.0, 1.0]))
    loss.backward()
    assert loss.item() == 0 and not np.any(X.grad)


# ---------------------------------------------------------------- the PyTorch forms a user types
def test_unbatched_conv2d_matches_torch():
    rng = np.random.default_rng(1)
    x, weight, bias = rng.standard_normal((3, 7, 6)), rng.standard_normal((2, 3, 3, 2)), rng.standard_normal(2)
    ours = [minipsp.tensor(v, requires_grad=True) for v in (x, weight, bias)]
    theirs = [torch.tensor(v, requires_grad=True) for v in (x, weight, bias)]
    y = F.conv2d(*ours, stride=(2, 1), padding=1, dilation=(1, 2))
    y_torch = TF.conv2d(*theirs, stride=(2, 1), padding=1, dilation=(1, 2))
    assert y.shape == tuple(y_torch.shape) == (2, 4, 6)
    y.sum().backward()
    y_torch.sum().backward()
    _close(y.numpy(), y_torch)
    for mine, torch_one in zip(ours, theirs):
        _close(mine.grad, torch_one.grad)


@pytest.mark.parametrize("kwargs", [dict(stride=[2]), dict(stride=(2,), padding=[1], dilation=(2,))])
def test_one_element_sequences_count_for_both_axes(kwargs):
    x, weight = np.random.default_rng(2).standard_normal((1, 3, 9, 8)), np.ones((2, 3, 3, 3))
    _close(F.conv2d(minipsp.tensor(x), minipsp.tensor(weight), **kwargs).numpy(),
           TF.conv2d(torch.tensor(x), torch.tensor(weight), **kwargs))
    _close(F.max_pool2d(minipsp.tensor(x), kernel_size=(3,), stride=[2]).numpy(),
           TF.max_pool2d(torch.tensor(x), kernel_size=(3,), stride=[2]))
    assert nn.Conv2d(3, 2, (3,), stride=[2]).weight.shape == (2, 3, 3, 3)


def test_padding_strings_that_torch_refuses_are_refused():
    with pytest.raises(ValueError, match=r"conv2d: padding='same' is not supported for strided convolutions"):
        F.conv2d(_t(1, 3, 5, 5), _t(2, 3, 3, 3), stride=2, padding="same")
    with pytest.raises(ValueError, match=r"conv2d: padding must be an int, a pair of ints, 'valid' or 'same'; "
                                         r"got 'SAME'"):
        F.conv2d(_t(1, 3, 5, 5), _t(2, 3, 3, 3), padding="SAME")
    with pytest.raises(ValueError, match=r"Conv2d: padding='same' is not supported for strided convolutions"):
        nn.Conv2d(3, 2, 3, stride=2, padding="same")


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("kernel_size, dilation", [(4, 1), ((2, 3), (1, 2)), (3, 2)])
def test_conv2d_layer_with_same_padding_matches_torch(kernel_size, dilation):
    ours = nn.Conv2d(3, 2, kernel_size, padding="same", dilation=dilation)
    theirs = torch.nn.Conv2d(3, 2, kernel_size, padding="same", dilation=dilation)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.weight.numpy()))
        theirs.bias.copy_(torch.tensor(ours.bias.numpy()))
    x = np.random.default_rng(4).standard_normal((2, 3, 6, 5)).astype(np.float32)
    y = ours(minipsp.tensor(x))
    assert y.shape == (2, 2, 6, 5) and ours.padding == theirs.padding == "same" and "padding='same'" in repr(ours)
    _close(y.numpy(), theirs(torch.tensor(x)), tol=1e-5)


def test_cross_entropy_loss_layer_passes_weight_and_label_smoothing_through():
    rng = np.random.default_rng(5)
    x, target = rng.standard_normal((2, 4, 3, 3)), rng.integers(0, 4, (2, 3, 3))
    target[0, 0] = 255
    weight = np.array([0.5, 2.0, 1.0, 1.5])
    ours = nn.CrossEntropyLoss(weight=weight, label_smoothing=0.2)
    theirs = torch.nn.CrossEntropyLoss(weight=torch.tensor(weight), ignore_index=255, label_smoothing=0.2)
    X, xt = minipsp.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    loss, loss_torch = ours(X, target), theirs(xt, torch.tensor(target))
    loss.backward()
    loss_torch.backward()
    _close(loss.numpy(), loss_torch)
    _close(X.grad, xt.grad)
    assert "weight" in ours.state_dict() and "label_smoothing=0.2" in repr(ours)


@pytest.mark.parametrize("eps", [-0.1, 1.5, "0.1", True])
def test_label_smoothing_outside_0_1_is_refused(eps):
    with pytest.raises(ValueError, match=r"cross_entropy: label_smoothing must be a number between 0.0 and 1.0"):
        F.cross_entropy(_t(2, 3), np.zeros(2, np.int64), label_smoothing=eps)


@pytest.mark.parametrize("make, words", [
    (lambda: nn.Conv2d(3, 4, 0), "Conv2d: kernel_size must be positive; got 0"),
    (lambda: nn.Conv2d(3, 4, (3, 0)), "Conv2d: kernel_size must be positive; got (3, 0)"),
    (lambda: nn.BatchNorm2d(0), "BatchNorm2d: num_features must be a positive int; got 0"),
    (lambda: nn.BatchNorm2d(-2), "BatchNorm2d: num_features must be a positive int; got -2"),
    (lambda: nn.BatchNorm2d(2.5), "BatchNorm2d: num_features must be a positive int; got 2.5"),
])
def test_layers_refuse_empty_kernels_and_feature_counts_naming_them(make, words):
    # were ZeroDivisionError from the init's bound, NumPy's "negative dimensions", or a silent int(2.5)
    with pytest.raises(ValueError, match=re.escape(words)):
        make()


def test_batch_norm_refuses_a_nan_eps():
    # `eps <= 0` let NaN through, and every output became NaN
    x = minipsp.tensor(np.ones((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="batch_norm: eps must be positive; got nan"):
        F.batch_norm(x, None, None, training=True, eps=float("nan"))


@pytest.mark.parametrize("bins", [(), (0, 2), (1.5,)])
def test_pspnet_refuses_empty_or_non_positive_bins(bins):
    from minipsp.models import PSPNet

    with pytest.raises(ValueError, match=re.escape(f"PSPNet: bins must be a non-empty list of positive ints such as "
                                                   f"(1, 2, 3, 6); got {bins!r}")):     # () was ZeroDivisionError
        PSPNet(layers=18, classes=3, width=8, bins=bins)
