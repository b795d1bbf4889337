"""Module machinery (registration, state, modes, devices) and the layers, against torch.nn."""

import math
from collections import OrderedDict

import numpy as np
import pytest
import torch

import minipsp
import minipsp.nn as nn
from minipsp.backend import cuda_is_available


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU(inplace=True)
        self.heads = nn.ModuleList([nn.Conv2d(4, 2, 1), nn.Conv2d(4, 2, 1)])
        self.scale = 2.0  # a plain attribute: not a parameter

    def forward(self, x):
        x = self.act(self.bn(self.conv(x)))
        return self.heads[0](x) + self.heads[1](x)


class TorchBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = torch.nn.BatchNorm2d(4)
        self.act = torch.nn.ReLU(inplace=True)
        self.heads = torch.nn.ModuleList([torch.nn.Conv2d(4, 2, 1), torch.nn.Conv2d(4, 2, 1)])

    def forward(self, x):
        x = self.act(self.bn(self.conv(x)))
        return self.heads[0](x) + self.heads[1](x)


def test_names_match_torch():
    ours, theirs = Block(), TorchBlock()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        assert ours.state_dict()[key].shape == tuple(value.shape), key
        assert ours.state_dict()[key].dtype == value.numpy().dtype, key   # num_batches_tracked is int64
    assert ours.num_parameters() == sum(p.numel() for p in theirs.parameters())
    assert ours.scale == 2.0 and "scale" not in dict(ours.named_parameters())


def test_shared_modules_and_parameters_are_counted_once():
    conv = nn.Conv2d(2, 2, 1)
    model = nn.Sequential(conv, nn.ReLU(), conv)
    assert len(list(model.parameters())) == 2
    assert [n for n, _ in model.named_modules()] == ["", "0", "1"]
    assert list(model.state_dict()) == ["0.weight", "0.bias"]


def test_repr_matches_torch():
    ours = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1),
                         nn.AdaptiveAvgPool2d(2), nn.AdaptiveMaxPool2d(2), nn.Dropout2d(0.1), nn.Identity(),
                         nn.Conv2d(3, 8, 1, dilation=2))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1, bias=False), torch.nn.ReLU(inplace=True),
                                 torch.nn.MaxPool2d(3, 2, 1), torch.nn.AdaptiveAvgPool2d(2),
                                 torch.nn.AdaptiveMaxPool2d(2), torch.nn.Dropout2d(0.1), torch.nn.Identity(),
                                 torch.nn.Conv2d(3, 8, 1, dilation=2))
    assert repr(ours) == repr(theirs)
    assert repr(nn.BatchNorm2d(4)).startswith("BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True")


def test_train_eval_and_eval_mode_restore_flags():
    model = Block()
    model.heads[1].eval()
    with pytest.raises(KeyError), model.eval_mode():
        assert not any(m.training for m in model.modules())
        raise KeyError("even on error")
    assert model.training and model.bn.training and not model.heads[1].training
    model.eval()
    assert not any(m.training for m in model.modules())
    assert model.train() is model and all(m.training for m in model.modules())


def test_load_state_dict_strict_and_lenient():
    source, target = Block(), Block()
    target.load_state_dict(source.state_dict())
    for key, value in source.state_dict().items():
        np.testing.assert_array_equal(target.state_dict()[key], value, err_msg=key)
    state = source.state_dict()
    state["bn.weight"] = state["bn.weight"].astype(np.float64)  # cast to the parameter's dtype
    target.load_state_dict(state)
    assert target.bn.weight.dtype == np.float32
    del state["bn.bias"]
    state["extra.weight"] = np.zeros(1)
    state["conv.weight"] = np.zeros((4, 3, 1, 1), np.float32)
    with pytest.raises(RuntimeError) as info:
        target.load_state_dict(state)
    message = str(info.value)
    assert "missing keys: bn.bias" in message and "unexpected keys: extra.weight" in message
    assert "conv.weight: checkpoint has (4, 3, 1, 1), model has (4, 3, 3, 3)" in message
    del state["conv.weight"]
    missing, unexpected = target.load_state_dict(state, strict=False)
    assert missing == ["conv.weight", "bn.bias"] and unexpected == ["extra.weight"]


def test_state_dict_is_a_copy():
    model = Block()
    state = model.state_dict()
    assert isinstance(state, OrderedDict)
    state["bn.weight"][:] = 5.0
    assert float(model.bn.weight.data[0]) == 1.0


def test_to_dtype_keeps_parameter_objects_and_integer_buffers():
    model = Block()
    weight = model.conv.weight
    model.to(np.float64)
    assert model.conv.weight is weight and weight.dtype == np.float64
    assert model.bn.running_var.dtype == np.float64 and model.bn.num_batches_tracked.dtype == np.int64
    model.float()
    assert weight.dtype == np.float32
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda'"):
        model.to("tpu")


@pytest.mark.skipif(cuda_is_available(), reason="checks the error shown when CUDA is missing")
def test_to_cuda_without_a_gpu_says_why():
    with pytest.raises(RuntimeError, match="device 'cuda' requested but"):
        Block().to("cuda")


def test_zero_grad_and_requires_grad():
    model = Block()
    x = minipsp.randn(2, 3, 5, 5)
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad(set_to_none=False)
    assert all(not p.grad.any() for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())


def test_forward_hooks_and_container_errors():
    seen = []
    model = nn.Sequential(nn.ReLU(), nn.Identity())
    handle = model[0].register_forward_hook(lambda m, inputs, out: seen.append(out.shape))
    model(minipsp.zeros(1, 2, 3, 3))
    handle.remove()
    model(minipsp.zeros(1, 2, 3, 3))
    assert seen == [(1, 2, 3, 3)]
    assert len(model) == 2 and isinstance(model[1:], nn.Sequential)
    with pytest.raises(RuntimeError, match="ModuleList is a container"):
        nn.ModuleList([nn.ReLU()])(minipsp.zeros(1))
    with pytest.raises(AttributeError, match="'Sequential' object has no attribute 'nope'"):
        model.nope  # noqa: B018


def test_conv_default_init_is_torchs_and_reproducible():
    minipsp.manual_seed(0)
    conv = nn.Conv2d(16, 32, 3)
    bound = 1 / math.sqrt(16 * 9)  # kaiming_uniform_(a=sqrt(5)) on fan_in 144
    w, b = conv.weight.numpy(), conv.bias.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert np.abs(b).max() <= bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound  # the std of U(-bound, bound)
    minipsp.manual_seed(0)
    np.testing.assert_array_equal(nn.Conv2d(16, 32, 3).weight.numpy(), w)
    bn = nn.BatchNorm2d(5)
    assert (bn.weight.numpy() == 1).all() and (bn.bias.numpy() == 0).all()


def test_kaiming_normal_std():
    weight = nn.Parameter(np.empty((256, 64, 3, 3), np.float32))
    nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu")
    expected = math.sqrt(2.0 / (256 * 9))
    assert abs(weight.numpy().std() - expected) < 0.02 * expected
    with pytest.raises(ValueError, match="mode must be"):
        nn.init.kaiming_normal_(weight, mode="fan")


def copy_weights(ours, theirs):
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def assert_close(actual, expected, rtol=1e-4, what=""):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    scale = max(np.abs(expected).max(), 1e-6) if expected.size else 1.0
    err = np.abs(actual - expected).max() if expected.size else 0.0
    assert err <= rtol * scale, f"{what}: max abs error {err:.3g} vs scale {scale:.3g}"


@pytest.mark.parametrize("training", [True, False])
def test_block_matches_torch_forward_backward_and_running_stats(training):
    torch.manual_seed(0)
    theirs, ours = TorchBlock(), Block()
    with torch.no_grad():
        theirs.bn.running_mean.uniform_(-0.5, 0.5)
        theirs.bn.running_var.uniform_(0.5, 2.0)
        theirs.bn.weight.uniform_(0.5, 1.5)
    copy_weights(ours, theirs)
    theirs.train(training)
    ours.train(training)
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 6)).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    mx = minipsp.tensor(x, requires_grad=True)
    for step in range(2):  # twice: the running statistics move and num_batches_tracked counts
        ty, my = theirs(tx), ours(mx)
        assert_close(my.numpy(), ty.detach().numpy(), what=f"forward {step}")
    (ty * ty).sum().backward()
    (my * my).sum().backward()
    assert_close(mx.grad, tx.grad.numpy(), what="input grad")
    named = dict(ours.named_parameters())
    for name, param in theirs.named_parameters():
        assert_close(named[name].grad, param.grad.numpy(), what=f"{name}.grad")
    for key, value in theirs.state_dict().items():
        assert_close(ours.state_dict()[key], value.numpy(), what=key)


def test_batchnorm_cumulative_average_and_no_running_stats():
    x = np.random.default_rng(1).standard_normal((4, 3, 5, 5)).astype(np.float32)
    for kwargs in ({"momentum": None}, {"track_running_stats": False}, {"affine": False}):
        theirs, ours = torch.nn.BatchNorm2d(3, **kwargs), nn.BatchNorm2d(3, **kwargs)
        assert list(ours.state_dict()) == list(theirs.state_dict())
        for _ in range(3):
            ty, my = theirs(torch.tensor(x * 2 + 1)), ours(minipsp.tensor(x * 2 + 1))
        assert_close(my.numpy(), ty.detach().numpy(), what=str(kwargs))
        for key, value in theirs.state_dict().items():
            assert_close(ours.state_dict()[key], value.numpy(), what=f"{kwargs} {key}")
        theirs.eval()
        ours.eval()
        assert_close(ours(minipsp.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(), what="eval")
    with pytest.raises(ValueError, match="BatchNorm2d: expected a 4-D input"):
        nn.BatchNorm2d(3)(minipsp.zeros(2, 3))


def test_pooling_and_dropout_layers_match_torch():
    x = np.random.default_rng(2).standard_normal((2, 3, 9, 7)).astype(np.float32)
    pairs = [(nn.MaxPool2d(3, 2, 1), torch.nn.MaxPool2d(3, 2, 1)),
             (nn.AdaptiveAvgPool2d(3), torch.nn.AdaptiveAvgPool2d(3)),
             (nn.AdaptiveMaxPool2d((2, 4)), torch.nn.AdaptiveMaxPool2d((2, 4))),
             (nn.ReLU(), torch.nn.ReLU()), (nn.Identity(), torch.nn.Identity())]
    for ours, theirs in pairs:
        assert_close(ours(minipsp.tensor(x)).numpy(), theirs(torch.tensor(x)).numpy(), what=repr(ours))
    drop = nn.Dropout2d(0.5)
    y = drop(minipsp.tensor(np.ones((4, 8, 3, 3), np.float32))).numpy()
    per_channel = y.reshape(32, 9)
    assert set(np.unique(per_channel)) <= {0.0, 2.0} and (per_channel.min(1) == per_channel.max(1)).all()
    drop.eval()
    np.testing.assert_array_equal(drop(minipsp.tensor(x)).numpy(), x)
