"""Bad arguments on the Python API, as a hostile user types them (issue 13, section 3, continued from
test_api_inputs.py): each is refused by the function that owns the argument, with one ValueError or TypeError
that names the argument, what it got and what it expects; never NumPy's message from inside, an IndexError,
or a silent wrong answer. Where PyTorch accepts a value legitimately, it is accepted here too.
"""

import os
import re

import numpy as np
import pytest
import torch

import minipsp
import minipsp.optim
from minipsp.optim.lr_scheduler import PolyLR, poly_lr


def raises(error, words, call):
    """`call()` raises `error` whose message holds `words` (literally); the message."""
    with pytest.raises(error, match=re.escape(words)) as info:
        call()
    return str(info.value)


# ---------------------------------------------------------------- making tensors
@pytest.mark.parametrize("data, where", [
    ([[1, 2], [3]], "at dim 1, element 0 is a sequence of length 2 but element 1 is a sequence of length 1"),
    ([[1.0], [2.0, 3.0]], "at dim 1, element 0 is a sequence of length 1 but element 1 is a sequence of length 2"),
    ([[[1], [2]], [[3], 4]], "at dim 2, element 0 is a sequence of length 1 but element 1 is a number"),
])
def test_a_ragged_list_names_where_it_is_ragged(data, where):
    # was NumPy's "setting an array element with a sequence ... inhomogeneous shape"
    with pytest.raises((ValueError, TypeError)):        # torch: "expected sequence of length 2 at dim 1 (got 1)"
        torch.tensor(data)
    raises(ValueError, f"tensor: data is ragged: {where}", lambda: minipsp.tensor(data))
    raises(ValueError, f"Tensor: data is ragged: {where}", lambda: minipsp.Tensor(data))


@pytest.mark.parametrize("make", ["zeros", "ones", "rand", "randn"])
@pytest.mark.parametrize("size, error, words", [
    ((-1,), ValueError, "sizes must be >= 0; got (-1,)"),
    (((2, -3),), ValueError, "sizes must be >= 0; got (2, -3)"),
    ((2.5,), TypeError, "size must be ints, e.g. {0}(2, 3) or {0}((2, 3)); got (2.5,), which holds a float"),
    (((2, 2.5),), TypeError, "got (2, 2.5), which holds a float"),
    (("3",), TypeError, "got ('3',), which holds a str"),
    ((None,), TypeError, "got (None,), which holds a NoneType"),
])
def test_sizes_of_new_tensors_are_checked(make, size, error, words):
    with pytest.raises((RuntimeError, TypeError)):       # torch refuses each of them too
        getattr(torch, make)(*size)
    message = raises(error, words.format(make), lambda: getattr(minipsp, make)(*size))
    assert message.startswith(f"{make}: ")


def test_legitimate_sizes_still_make_tensors():
    assert minipsp.zeros(()).shape == () and minipsp.zeros(0, 3).shape == (0, 3)
    assert minipsp.ones([2, 3]).shape == (2, 3) and minipsp.randn(np.int64(2), 3).shape == (2, 3)
    assert minipsp.rand(*np.array([2, 1])).shape == (2, 1)


def test_a_dtype_that_is_not_one_is_named():
    raises(TypeError, "tensor: dtype 'floot' is not a dtype; expected e.g. np.float32", lambda: minipsp.tensor(
        [1.0], dtype="floot"))                            # was NumPy's "data type 'floot' not understood"
    assert minipsp.tensor([1], dtype="float64").dtype == np.float64


# ---------------------------------------------------------------- dims and shapes
@pytest.mark.parametrize("call, torch_call, error, words", [
    (lambda t: t.transpose(0, 5), lambda t: t.transpose(0, 5), ValueError,
     "transpose: dim 5 is out of range for a tensor with 2 dimensions (expected an int in [-2, 1])"),  # IndexError
    (lambda t: t.transpose(0, -3), lambda t: t.transpose(0, -3), ValueError, "transpose: dim -3 is out of range"),
    (lambda t: t.transpose("a", 1), lambda t: t.transpose("a", 1), TypeError,
     "transpose: dim must be an int in [-2, 1]; got str 'a'"),
    (lambda t: t.flatten(5), lambda t: t.flatten(5), ValueError, "flatten: dim 5 is out of range"),  # was silent
    (lambda t: t.flatten(1, 0), lambda t: t.flatten(1, 0), ValueError, "flatten: start_dim 1 comes after end_dim 0"),
    (lambda t: t.unsqueeze(3), lambda t: t.unsqueeze(3), ValueError,               # was silent: (2, 1, 3)
     "unsqueeze: dim 3 is out of range for a tensor with 2 dimensions (expected an int in [-3, 2])"),
    (lambda t: t.squeeze(5), lambda t: t.squeeze(5), ValueError, "squeeze: dim 5 is out of range"),  # was silent
    (lambda t: t.argmax(5), lambda t: t.argmax(5), ValueError, "argmax: dim 5 is out of range"),     # NumPy's
    (lambda t: t.reshape(2, -2), lambda t: t.reshape(2, -2), ValueError,            # was silent: NumPy's -1
     "reshape: shape (2, -2) may hold one -1 (the size to infer) and no other negative size"),
    (lambda t: t.reshape(-1, -1), lambda t: t.reshape(-1, -1), ValueError, "reshape: shape (-1, -1) may hold one -1"),
    (lambda t: t.reshape(2.0, 3), lambda t: t.reshape((2.0, 3)), TypeError,
     "reshape: shape must be ints; got (2.0, 3), which holds a float"),
    (lambda t: t.reshape(7), lambda t: t.reshape(7), ValueError,
     "reshape: cannot view a tensor of shape (2, 3) (6 elements) as shape (7,)"),
])
def test_dims_and_shapes_out_of_range_are_named(call, torch_call, error, words):
    with pytest.raises((IndexError, RuntimeError, TypeError)):   # torch refuses each
        torch_call(torch.zeros(2, 3))
    raises(error, words, lambda: call(minipsp.zeros(2, 3)))


def test_dims_in_range_match_torch():
    for shape in [(2, 3), (2, 1, 3), ()]:
        ours, theirs = minipsp.zeros(shape), torch.zeros(shape)
        for dim in range(-max(len(shape), 1), max(len(shape), 1)):
            assert ours.squeeze(dim).shape == tuple(theirs.squeeze(dim).shape)
            assert ours.flatten(dim).shape == tuple(theirs.flatten(dim).shape)
            assert ours.transpose(0, dim).shape == tuple(theirs.transpose(0, dim).shape)
        for dim in range(-len(shape) - 1, len(shape) + 1):
            assert ours.unsqueeze(dim).shape == tuple(theirs.unsqueeze(dim).shape)
    assert minipsp.zeros(2, 3).reshape(-1, 2).shape == (3, 2)


# ---------------------------------------------------------------- SGD
def _params():
    return [minipsp.tensor(np.ones(3, np.float32), requires_grad=True)]


@pytest.mark.parametrize("kwargs, words", [
    (dict(lr=float("nan")), "SGD: lr must be a finite number >= 0; got nan"),     # torch takes it: NaN weights
    (dict(lr=float("inf")), "SGD: lr must be a finite number >= 0; got inf"),
    (dict(lr="0.1"), "SGD: lr must be a finite number >= 0; got '0.1'"),
    (dict(lr=None), "SGD: lr must be a finite number >= 0; got None"),
    (dict(lr=0.1, momentum=float("nan")), "SGD: momentum must be a finite number >= 0; got nan"),
    (dict(lr=0.1, momentum="0.9"), "SGD: momentum must be a finite number >= 0; got '0.9'"),   # was '<' not supported
    (dict(lr=0.1, weight_decay=float("nan")), "SGD: weight_decay must be a finite number >= 0; got nan"),
    (dict(lr=0.1, weight_decay="1e-4"), "SGD: weight_decay must be a finite number >= 0; got '1e-4'"),
    (dict(lr=0.1, dampening=float("nan")), "SGD: dampening must be a finite number; got nan"),
])
def test_sgd_refuses_hyper_parameters_that_are_not_finite_numbers(kwargs, words):
    raises(ValueError, words, lambda: minipsp.optim.SGD(_params(), **kwargs))


def test_sgd_takes_what_torch_takes_legitimately():
    for kwargs in [dict(lr=0.0), dict(lr=0.1, momentum=1.5), dict(lr=0.1, dampening=-0.5), dict(lr=np.float32(0.1))]:
        torch.optim.SGD([torch.ones(3, requires_grad=True)], **kwargs)
        minipsp.optim.SGD(_params(), **kwargs)


def test_sgd_refuses_one_tensor_for_params():
    # list(tensor) gave its rows: copies that never get a gradient, so step() silently moved nothing
    with pytest.raises(TypeError):
        torch.optim.SGD(torch.ones(3, requires_grad=True), lr=0.1)
    raises(TypeError, "SGD: params must be an iterable of tensors or of parameter-group dicts, e.g. "
                      "model.parameters() or [weight]; got one Tensor", lambda: minipsp.optim.SGD(_params()[0], lr=0.1))


def _saved():
    return {"state": {0: {"momentum_buffer": np.zeros(3, np.float32)}},
            "param_groups": [{"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False,
                              "params": [0]}]}


def _with(change):
    state = _saved()
    change(state)
    return state


W = "SGD.load_state_dict: "
JUNK = [
    (42, TypeError, W + "expected what SGD.state_dict() returns, a dict with 'state' and 'param_groups'; got int"),
    ({}, TypeError, W + "expected what SGD.state_dict() returns, a dict with 'state' and 'param_groups'; got keys []"),
    (_with(lambda s: s.pop("state")), TypeError, "got keys ['param_groups']"),                # was KeyError
    (_with(lambda s: s.update(state=[1])), TypeError, W + "'state' must be a dict"),           # AttributeError
    (_with(lambda s: s.update(param_groups=5)), TypeError, W + "'param_groups' must be a list of dicts, each with a "
                                                               "'params' list; got int 5"),     # "no len()"
    (_with(lambda s: s.update(param_groups=[5])), TypeError, "'param_groups' must be a list of dicts"),
    (_with(lambda s: s["param_groups"][0].pop("params")), TypeError, "'param_groups' must be a list of dicts"),
    (_with(lambda s: s["param_groups"][0].update(params=[0, 1])), ValueError,
     "parameter group 0: the saved optimiser has 2 parameters but this one has 1"),
    (_with(lambda s: s["param_groups"][0].update(lr="fast")), ValueError,                      # was silent
     W + "saved parameter group 0: lr must be a finite number >= 0; got 'fast'"),
    (_with(lambda s: s["param_groups"][0].update(momentum=-1)), ValueError, "momentum must be >= 0; got -1"),
    (_with(lambda s: s["state"].update({5: s["state"].pop(0)})), ValueError,                   # was IndexError
     W + "'state' key 5 is not a parameter index in [0, 1)"),
    (_with(lambda s: s["state"].update({-1: s["state"].pop(0)})), ValueError,                  # was silent
     W + "'state' key -1 is not a parameter index in [0, 1)"),
    (_with(lambda s: s["state"].update({"x": s["state"].pop(0)})), ValueError, "'state' key 'x' is not a parameter"),
    (_with(lambda s: s["state"].update({0: {}})), ValueError,                                  # was KeyError
     W + "the state of parameter 0 must be a dict with a 'momentum_buffer'; got dict {}"),
    (_with(lambda s: s["state"][0].update(momentum_buffer="abc")), TypeError,                  # "has shape ()"
     W + "momentum buffer 0 must be an array of numbers; got str 'abc'"),
    (_with(lambda s: s["state"][0].update(momentum_buffer=np.zeros((2, 2)))), ValueError,
     "momentum buffer 0 has shape (2, 2) but its parameter has shape (3,)"),
]


@pytest.mark.parametrize("state, error, words", JUNK)
def test_sgd_load_state_dict_refuses_junk_and_changes_nothing(state, error, words):
    params = _params()
    optimizer = minipsp.optim.SGD(params, lr=0.5, momentum=0.5)
    params[0].grad = np.ones(3, np.float32)
    optimizer.step()
    before = optimizer.state_dict()
    raises(error, words, lambda: optimizer.load_state_dict(state))
    after = optimizer.state_dict()
    assert after["param_groups"] == before["param_groups"]
    np.testing.assert_array_equal(after["state"][0]["momentum_buffer"], before["state"][0]["momentum_buffer"])


def test_sgd_load_state_dict_takes_string_keys_and_tensor_buffers():
    optimizer = minipsp.optim.SGD(_params(), lr=0.1, momentum=0.9)
    optimizer.load_state_dict(_with(lambda s: s["state"].update({"0": {"momentum_buffer": minipsp.ones(3)}})))
    np.testing.assert_array_equal(optimizer.state_dict()["state"][0]["momentum_buffer"], np.ones(3))


# ---------------------------------------------------------------- minipsp.save
@pytest.mark.parametrize("f, error, words", [
    (None, TypeError, "minipsp.save: f must be a path (a str or os.PathLike) to write to; got NoneType"),  # os.fspath's
    (42, TypeError, "minipsp.save: f must be a path (a str or os.PathLike) to write to; got int"),
    ("", ValueError, "minipsp.save: f must name a file; got ''"),         # named the hidden temporary file
])
def test_save_refuses_what_is_not_a_file_name(f, error, words):
    raises(error, words, lambda: minipsp.save({"a": 1}, f))


def test_save_names_the_folder_and_the_reason(tmp_path):
    raises(ValueError, f"minipsp.save: f must name a file; got '{tmp_path}/'", lambda: minipsp.save({}, f"{tmp_path}/"))
    raises(IsADirectoryError, f"minipsp.save: cannot write '{tmp_path}': it is a folder; expected a file name",
           lambda: minipsp.save({}, tmp_path))
    (tmp_path / "file").write_text("x")
    raises(NotADirectoryError, f"the folder '{tmp_path}/file' is not a folder",
           lambda: minipsp.save({}, tmp_path / "file" / "x.mpsp"))
    if os.path.isdir("/proc/self"):          # a filesystem no file can be created in, even by root
        raises(OSError, "minipsp.save: cannot write '/proc/x.mpsp': cannot create a file in '/proc'",
               lambda: minipsp.save({}, "/proc/x.mpsp"))
    minipsp.save({"a": 1}, str(tmp_path / "ok.mpsp").encode())           # a bytes path is a path
    assert minipsp.load(tmp_path / "ok.mpsp") == {"a": 1}
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


# ---------------------------------------------------------------- layers and their state
@pytest.mark.parametrize("kwargs, name, got", [
    (dict(kernel_size=2.5), "kernel_size", "2.5"),          # was a silent 2 x 2 kernel
    (dict(kernel_size=(3, 2.5)), "kernel_size", "(3, 2.5)"),
    (dict(kernel_size=3, stride=1.5), "stride", "1.5"),      # was a silent stride of 1
    (dict(kernel_size=3, padding=1.5), "padding", "1.5"),
    (dict(kernel_size=3, dilation=1.5), "dilation", "1.5"),
    (dict(kernel_size=(3, 3, 3)), "kernel_size", "(3, 3, 3)"),
])
def test_conv2d_layer_refuses_sizes_that_are_not_ints(kwargs, name, got):
    kwargs = {"kernel_size": 3, **kwargs}
    with pytest.raises((TypeError, RuntimeError)):             # torch refuses each (at build or at call)
        torch.nn.Conv2d(3, 4, **kwargs)(torch.zeros(1, 3, 8, 8))
    error = ValueError if got == "(3, 3, 3)" else TypeError
    raises(error, f"Conv2d: {name} must be an int or a pair of ints; got {got}",
           lambda: minipsp.nn.Conv2d(3, 4, **kwargs))


def test_conv2d_layer_takes_numpy_ints_and_one_element_sequences():
    layer = minipsp.nn.Conv2d(3, 4, np.int64(3), stride=[2], padding=(1, np.int32(0)))
    assert layer.kernel_size == (3, 3) and layer.stride == (2, 2) and layer.padding == (1, 0)


def test_module_load_state_dict_refuses_what_is_not_a_state_dict():
    layer = minipsp.nn.Conv2d(3, 4, 3)
    raises(TypeError, "Conv2d.load_state_dict: expected a dict of arrays by name (what state_dict() returns); got int",
           lambda: layer.load_state_dict(42))                 # was "argument of type 'int' is not iterable"
    raises(TypeError, "Conv2d.load_state_dict: every value must be an array of numbers; weight is a str",
           lambda: layer.load_state_dict({"weight": "abc", "bias": np.zeros(4, np.float32)}))  # "checkpoint has ()"
    raises(RuntimeError, "size mismatch for weight: checkpoint has (4, 3, 1, 1), model has (4, 3, 3, 3)",
           lambda: layer.load_state_dict({"weight": np.zeros((4, 3, 1, 1)), "bias": np.zeros(4)}, strict=False))
    layer.load_state_dict({"weight": minipsp.zeros(4, 3, 3, 3), "bias": [0, 1, 2, 3]})   # tensors and lists load
    np.testing.assert_array_equal(layer.bias.data, [0, 1, 2, 3])


# ---------------------------------------------------------------- PSPNet, the schedule, the loader
@pytest.mark.parametrize("layers", [50.0, "50", 17, True])
def test_pspnet_layers_must_be_a_resnet_depth_as_an_int(layers):
    from minipsp.models import PSPNet

    # 50.0 was taken (50.0 == 50 as a dict key) and shown as "layers=50.0"
    raises(ValueError, f"PSPNet: layers must be one of [18, 34, 50, 101, 152] (the ResNet depth); got {layers!r}",
           lambda: PSPNet(layers=layers, classes=3, width=8))


@pytest.mark.parametrize("zoom", [3, 16])
def test_pspnet_zoom_factors_outside_semsegs_four_are_the_upsampling_they_say(zoom):
    """semseg asserts zoom_factor in (1, 2, 4, 8); here any positive int is accepted because it is not a wrong
    answer: the logits are the zoom-1 logits upsampled (align_corners) to (H - 1) / 8 * zoom + 1."""
    from minipsp.models import PSPNet

    minipsp.manual_seed(0)
    plain = PSPNet(layers=18, classes=3, width=8, zoom_factor=1).eval()
    zoomed = PSPNet(layers=18, classes=3, width=8, zoom_factor=zoom).eval()
    zoomed.load_state_dict(plain.state_dict())
    x = minipsp.randn(1, 3, 33, 33)
    with minipsp.no_grad():
        ours, base = zoomed(x), plain(x)
    side = 32 // 8 * zoom + 1
    assert ours.shape == (1, 3, side, side) == (1, 3, *zoomed.output_size(33, 33))
    expected = minipsp.nn.functional.interpolate(base, size=side, mode="bilinear", align_corners=True)
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    for bad in (0, -8, 2.0):
        raises(ValueError, f"PSPNet: zoom_factor must be a positive int (semseg uses 1, 2, 4 or 8); got {bad!r}",
               lambda bad=bad: PSPNet(layers=18, classes=3, width=8, zoom_factor=bad))


@pytest.mark.parametrize("call, words", [
    (lambda: poly_lr(0.1, 5, 10, power=-1), "poly_lr: power must be a finite number >= 0 (0.9 in PSPNet); got -1"),
    (lambda: poly_lr(0.1, 5, 10, power=float("nan")), "poly_lr: power must be a finite number >= 0"),  # was NaN
    (lambda: poly_lr(0.1, "5", 10), "poly_lr: iteration must be an int; got '5'"),
    (lambda: PolyLR(minipsp.optim.SGD(_params(), lr=0.1), max_iter=10, power=float("nan")),
     "PolyLR: power must be a finite number >= 0 (0.9 in PSPNet); got nan"),                   # was silent
    (lambda: PolyLR(minipsp.optim.SGD(_params(), lr=0.1), max_iter=10, power="0.9"),
     "PolyLR: power must be a finite number >= 0 (0.9 in PSPNet); got '0.9'"),                 # '<' not supported
])
def test_poly_schedule_refuses_a_power_that_would_make_the_rate_wrong(call, words):
    raises((ValueError, TypeError), words, call)
    assert poly_lr(0.1, 10, 10, power=0) == 0.1 and poly_lr(0.1, 10, 10) == 0.0    # power 0: a constant rate


def test_data_loader_refuses_a_bool_batch_size_and_what_is_not_a_dataset():
    from minipsp.data import DataLoader, SyntheticScenes

    dataset = SyntheticScenes("train", count=2, size=33)
    with pytest.raises(ValueError):
        torch.utils.data.DataLoader(list(range(4)), batch_size=True)
    raises(ValueError, "DataLoader: batch_size must be an int >= 1; got True", lambda: DataLoader(dataset, True))
    raises(ValueError, "DataLoader: batch_size must be an int >= 1; got 0", lambda: DataLoader(dataset, 0))
    raises(TypeError, "DataLoader: dataset must have __len__ and __getitem__ (a minipsp.data.Dataset); got NoneType",
           lambda: DataLoader(None, 2))                       # was "object of type 'NoneType' has no len()"
    raises(TypeError, "collate: each sample must be an (image, label) pair, as a Dataset's __getitem__ returns; "
                      "got int 1", lambda: list(DataLoader([1, 2, 3], batch_size=2)))  # "'int' is not iterable"


# ---------------------------------------------------------------- operands, dims of reductions and joins
@pytest.mark.parametrize("other", [None, "a", {"x": 1}, object()])
def test_an_operand_that_is_not_a_number_is_refused(other):
    # None was NaN (t + None: [nan, nan]), a str NumPy's "could not convert string to float"
    with pytest.raises(TypeError):
        torch.zeros(2) + other
    for op in (lambda t: t + other, lambda t: other - t, lambda t: t * other, lambda t: t < other):
        raises(TypeError, "an operand of a Tensor must be a Tensor, an array, a number or a list of numbers; got "
                          f"{type(other).__name__}", lambda op=op: op(minipsp.zeros(2)))
    assert (minipsp.zeros(2) == other) is (torch.zeros(2) == other) is False       # as torch: not equal
    assert (minipsp.zeros(2) != other) is True


@pytest.mark.parametrize("call, torch_call, error, words", [
    (lambda t: t.permute(0, 5), lambda t: t.permute(0, 5), ValueError,       # was permute(0, 1), silently
     "permute: dims (0, 5) are not a permutation of the 2 axes of shape (2, 3)"),
    (lambda t: t.sum(1.5), lambda t: t.sum(1.5), TypeError,                  # "'float' object is not iterable"
     "sum: dim must be an int or a tuple of ints; got float 1.5"),
    (lambda t: t.size(5), lambda t: t.size(5), ValueError,                    # "tuple index out of range"
     "size: dim 5 is out of range for a tensor with 2 dimensions (expected an int in [-2, 1])"),
    (lambda t: minipsp.cat([t, t], 5), lambda t: torch.cat([t, t], 5), ValueError, "cat: dim 5 is out of range"),
    (lambda t: minipsp.stack([t, t], "0"), lambda t: torch.stack([t, t], "0"), TypeError,
     "stack: dim must be an int in [-3, 2]; got str '0'"),
    (lambda t: minipsp.cat([1, 2]), lambda t: torch.cat([torch.tensor(1), torch.tensor(2)]), ValueError,
     "cat: zero-dimensional tensors (numbers) cannot be concatenated"),
])
def test_dims_of_reductions_and_joins_are_named(call, torch_call, error, words):
    with pytest.raises((IndexError, RuntimeError, TypeError)):
        torch_call(torch.zeros(2, 3))
    raises(error, words, lambda: call(minipsp.zeros(2, 3)))


def test_numpy_ints_are_dims_too():
    t = minipsp.zeros(2, 3)
    assert t.sum(np.int64(1)).shape == (2,) and t.permute(np.int64(1), 0).shape == (3, 2)
    assert minipsp.cat([t, t], np.int64(1)).shape == (2, 6) and t.size(np.int32(-1)) == 3


# ---------------------------------------------------------------- layer hyper-parameters, init, dtypes of new tensors
@pytest.mark.parametrize("call, error, words", [
    (lambda: minipsp.nn.Dropout2d("0.5"), ValueError, "Dropout2d: p must be a number between 0 and 1; got '0.5'"),
    (lambda: minipsp.nn.BatchNorm2d(3, eps="a"), TypeError,                       # float('a')'s message
     "BatchNorm2d: eps must be a positive number (1e-5 by default); got 'a'"),
    (lambda: minipsp.nn.init.kaiming_uniform_(minipsp.nn.Conv2d(3, 4, 3).weight, a=float("nan")), ValueError,
     "calculate_gain: the negative slope (a, param) must be a finite number; got nan"),  # NumPy's OverflowError
    (lambda: minipsp.nn.init.uniform_(minipsp.nn.Conv2d(3, 4, 3).weight, 1, -1), ValueError,
     "uniform_: the range [a, b) needs a <= b; got a=1, b=-1"),                   # NumPy's "high - low < 0"
    (lambda: minipsp.nn.init.uniform_(minipsp.nn.Conv2d(3, 4, 3).weight, 0, float("inf")), ValueError,
     "uniform_: b must be a finite number; got inf"),
    (lambda: minipsp.nn.init.normal_(minipsp.nn.Conv2d(3, 4, 3).weight, 0, -1), ValueError,
     "normal_: std must be >= 0; got -1"),                                         # NumPy's "scale < 0"
    (lambda: minipsp.zeros(2, dtype="floot"), TypeError, "zeros: dtype 'floot' is not a dtype"),
    (lambda: minipsp.randn(2, dtype=np.int64), TypeError,                         # was silently mostly zeros
     "randn: dtype must be floating point (float32 or float64); got int64"),
    (lambda: minipsp.rand(2, dtype=np.bool_), TypeError, "rand: dtype must be floating point"),
])
def test_layer_init_and_dtype_arguments_are_named(call, error, words):
    raises(error, words, call)


def test_what_torch_takes_there_is_taken():
    assert minipsp.nn.Dropout2d(np.float32(0.5)).p == 0.5 and minipsp.nn.BatchNorm2d(3, eps=np.float64(1e-3)).eps
    weight = minipsp.nn.Conv2d(3, 4, 3).weight
    minipsp.nn.init.uniform_(weight, 0.5, 0.5)
    minipsp.nn.init.normal_(weight, 0, 0)
    assert (weight.data == 0).all() and minipsp.zeros(2, dtype=np.int64).dtype == np.int64


# ---------------------------------------------------------------- devices, casts, load_checkpoint
def test_to_names_what_is_neither_a_device_nor_a_dtype():
    t = minipsp.zeros(2)
    raises(TypeError, "to/astype: expected a device ('cpu', 'cuda') or a dtype", lambda: t.to(None))  # float64
    raises(TypeError, "to/astype: dtype 'float99' is not a dtype", lambda: t.to("float99"))   # NumPy's message
    raises(ValueError, "device must be 'cpu' or 'cuda'; got 'tpu'", lambda: t.to("tpu"))
    # what torch takes: device=None (the default device) and 'cpu:0'
    assert torch.tensor([1.0], device=None).device.type == "cpu" and torch.zeros(2).to("cpu:0").device.type == "cpu"
    assert minipsp.tensor([1.0], device=None).device == "cpu" and t.to("cpu:0").device == "cpu"
    assert t.to("float64").dtype == np.float64 and t.to(np.int64).dtype == np.int64


def test_load_checkpoint_names_a_model_that_is_not_one(tmp_path):
    minipsp.save({"weight": np.zeros(3)}, tmp_path / "c.mpsp")
    raises(TypeError, "load_checkpoint: model must be a minipsp.nn.Module (the network to load into); got NoneType",
           lambda: minipsp.load_checkpoint(None, tmp_path / "c.mpsp"))     # was AttributeError
