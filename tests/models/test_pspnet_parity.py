"""Whole-model parity: semseg's PSPNet written in PyTorch (below, test-only) against minipsp's.

The PyTorch model gets random weights and realistic BN statistics, is written with torch.save,
read back with minipsp.load (no torch involved) and loaded strictly into minipsp's PSPNet. Then
logits, the main and aux losses and every parameter's gradient must agree in float32.
"""

import contextlib
import copy

import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as tF

import minipsp
from minipsp.models import PSPNet, resnet18, summary

# -- the reference: semseg's PSPNet, with a torchvision-style ResNet written inline -------------


class TorchBasicBlock(tnn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.relu = tnn.ReLU(inplace=True)
        self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + residual)


class TorchBottleneck(tnn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = tnn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.conv2 = tnn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.conv3 = tnn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = tnn.BatchNorm2d(planes * 4)
        self.relu = tnn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + residual)


class TorchResNet(tnn.Module):
    def __init__(self, block, layers, deep_base=True, num_classes=1000):
        super().__init__()
        self.deep_base = deep_base
        if deep_base:
            self.conv1 = tnn.Conv2d(3, 64, 3, 2, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(64)
            self.conv2 = tnn.Conv2d(64, 64, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(64)
            self.conv3 = tnn.Conv2d(64, 128, 3, 1, 1, bias=False)
            self.bn3 = tnn.BatchNorm2d(128)
            self.inplanes = 128
        else:
            self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = tnn.BatchNorm2d(64)
            self.inplanes = 64
        self.relu = tnn.ReLU(inplace=True)
        self.maxpool = tnn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], 2)
        self.layer3 = self._make_layer(block, 256, layers[2], 2)
        self.layer4 = self._make_layer(block, 512, layers[3], 2)
        self.fc = tnn.Linear(512 * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = tnn.Sequential(tnn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                        tnn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return tnn.Sequential(*layers)


DEPTHS = {18: (TorchBasicBlock, [2, 2, 2, 2]), 50: (TorchBottleneck, [3, 4, 6, 3])}


def dilate(layer, d):
    """semseg's rule, after construction: 3x3 convs get dilation = padding = d and stride 1."""
    for name, m in layer.named_modules():
        if isinstance(m, tnn.Conv2d) and m.kernel_size == (3, 3):
            m.dilation, m.padding, m.stride = (d, d), (d, d), (1, 1)
        elif "downsample.0" in name:
            m.stride = (1, 1)


class TorchPPM(tnn.Module):
    def __init__(self, in_dim, reduction_dim, bins, pooling):
        super().__init__()
        pool = tnn.AdaptiveAvgPool2d if pooling == "avg" else tnn.AdaptiveMaxPool2d
        self.features = tnn.ModuleList([
            tnn.Sequential(pool(b), tnn.Conv2d(in_dim, reduction_dim, 1, bias=False), tnn.BatchNorm2d(reduction_dim),
                           tnn.ReLU(inplace=True)) for b in bins])

    def forward(self, x):
        out = [x] + [tF.interpolate(f(x), x.shape[2:], mode="bilinear", align_corners=True) for f in self.features]
        return torch.cat(out, 1)


class TorchPSPNet(tnn.Module):
    def __init__(self, layers=50, bins=(1, 2, 3, 6), classes=5, pooling="avg", reduction_dim=None, dropout=0.1,
                 use_ppm=True, aux=True, deep_stem=True, output_stride=8, zoom_factor=8):
        super().__init__()
        resnet = TorchResNet(*DEPTHS[layers], deep_base=deep_stem)
        stem = [resnet.conv1, resnet.bn1, resnet.relu]
        if deep_stem:
            stem += [resnet.conv2, resnet.bn2, resnet.relu, resnet.conv3, resnet.bn3, resnet.relu]
        self.layer0 = tnn.Sequential(*stem, resnet.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4
        if output_stride == 8:
            dilate(self.layer3, 2)
            dilate(self.layer4, 4)
        else:
            dilate(self.layer4, 2)
        self.output_stride, self.zoom_factor = output_stride, zoom_factor
        fea_dim = 512 * DEPTHS[layers][0].expansion
        self.use_ppm = use_ppm
        if use_ppm:
            reduction_dim = reduction_dim or fea_dim // len(bins)
            self.ppm = TorchPPM(fea_dim, reduction_dim, bins, pooling)
            fea_dim += len(bins) * reduction_dim
        self.cls = tnn.Sequential(tnn.Conv2d(fea_dim, 512, 3, padding=1, bias=False), tnn.BatchNorm2d(512),
                                  tnn.ReLU(inplace=True), tnn.Dropout2d(p=dropout), tnn.Conv2d(512, classes, 1))
        if aux:
            aux_dim = 256 * DEPTHS[layers][0].expansion  # layer3's output
            self.aux = tnn.Sequential(tnn.Conv2d(aux_dim, 256, 3, padding=1, bias=False), tnn.BatchNorm2d(256),
                                      tnn.ReLU(inplace=True), tnn.Dropout2d(p=dropout), tnn.Conv2d(256, classes, 1))
        else:
            self.aux = None
        self.criterion = tnn.CrossEntropyLoss(ignore_index=255)

    def forward(self, x, y=None):
        h = (x.shape[2] - 1) // self.output_stride * self.zoom_factor + 1
        w = (x.shape[3] - 1) // self.output_stride * self.zoom_factor + 1
        x = self.layer2(self.layer1(self.layer0(x)))
        x_tmp = self.layer3(x)
        x = self.layer4(x_tmp)
        if self.use_ppm:
            x = self.ppm(x)
        x = tF.interpolate(self.cls(x), size=(h, w), mode="bilinear", align_corners=True)
        if not self.training:
            return x
        if y.numel() == 1:  # randomise() only wants the batch statistics
            return x, None, None
        main_loss = self.criterion(x, y)
        aux_loss = None
        if self.aux is not None:
            aux = tF.interpolate(self.aux(x_tmp), size=(h, w), mode="bilinear", align_corners=True)
            aux_loss = self.criterion(aux, y)
        return x, main_loss, aux_loss


def randomise(model, x):
    """Random affine BN parameters, and running statistics taken from a batch (so eval is sane).

    Each residual branch's last BN gets a small weight, U(0, 0.2), as in a trained ResNet (and
    torchvision's zero_init_residual): a random deep net with full-strength branches is chaotic, and
    then even PyTorch's float32 gradients differ from its float64 ones by 10% or more.
    """
    generator = torch.Generator().manual_seed(1)
    momenta = {}
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, tnn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=generator) * 0.4 - 0.2)
                momenta[m] = m.momentum
                m.momentum = 1.0
        for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
            for block in layer:
                last_bn = block.bn3 if isinstance(block, TorchBottleneck) else block.bn2
                last_bn.weight.copy_(torch.rand(last_bn.num_features, generator=generator) * 0.2)
        model.train()
        model(x, torch.zeros(1, dtype=torch.long))  # no labels: only the statistics matter
        for m, momentum in momenta.items():
            m.momentum = momentum
            m.num_batches_tracked.fill_(7)


# -- the comparison --------------------------------------------------------------------------
# Two checks per model, against PyTorch in float64 as the truth.
# float64: minipsp equals it to 1e-7 relative, for the logits, both losses, every parameter's
#   gradient and every running statistic, one by one (the same math, exactly).
# float32: logits, losses and running statistics within 2e-4 of their largest value (or 3x PyTorch
#   float32's own error, where that is larger); the gradients of all parameters together within 2e-4
#   relative L2 error (or 2x PyTorch float32's), each against float64 PyTorch taking the same ReLU and
#   max-pool branches as that float32 run (see "the same branch" below). Gradients are judged together
#   because rounding in a deep random net is amplified unevenly. (Against the plain float64 run,
#   PyTorch's own float32 ResNet-50 gradients were 2.5e-3 off, a few parameters by 1%: branch flips;
#   on the same branches 1.8e-5, and minipsp's 3.8e-5.)
def run(model, x, y, dtype):
    """(name -> array) for the logits, the losses, every parameter gradient and the new BN state."""
    is_torch = isinstance(model, tnn.Module)
    if is_torch:
        inputs = (torch.tensor(x.astype(dtype)),) + ((torch.tensor(y),) if model.training else ())
    else:
        inputs = (minipsp.tensor(x.astype(dtype)),) + ((minipsp.tensor(y),) if model.training else ())
    if not model.training:
        with torch.no_grad(), minipsp.no_grad():
            logits = model(*inputs)
        return {"logits": logits.numpy()}
    logits, main_loss, aux_loss = model(*inputs)
    total = main_loss if aux_loss is None else main_loss + 0.4 * aux_loss
    total.backward()
    out = {"logits": logits.detach().numpy() if is_torch else logits.numpy(),
           "main loss": np.array(main_loss.item()), "aux loss": None if aux_loss is None else np.array(aux_loss.item())}
    for name, param in model.named_parameters():
        out[f"grad of {name}"] = param.grad.numpy() if is_torch else param.grad
    state = model.state_dict()
    for key in state:
        if "running" in key:
            out[f"state {key}"] = state[key].numpy() if is_torch else state[key]
    return out


# -- float32 against float64 on the same branch ------------------------------------------------
# ReLU and max pooling branch: a pre-activation within float32 rounding of 0 (or two window values
# that close) can come out on the other side in float32. Among the ~10^5 ReLU inputs of a 33-pixel
# PSPNet some always lie that close, and whether one flips depends on the last bits of each GEMM:
# with NumPy's OpenBLAS on its AVX-512 kernels (OPENBLAS_CORETYPE unset, on an AMD Zen 5) one
# ReLU input of layer1.0, 2.2e-6 in float64, came out positive in float32; that one pixel moved the
# stem's weight gradients by 0.17% (1.3e-3 relative L2 over all gradients, 2e-4 allowed); with the
# Haswell kernels it did not flip (5.7e-5). Such a flip is not a rounding error of the float32
# arithmetic but a different branch of a non-smooth function. So the float32 gradients are compared
# with float64 PyTorch taking the same branches: hooks make each nn.ReLU and nn.MaxPool2d of the
# float64 model use the mask / argmax that the float32 run took, in call order (and check that the
# shapes and kinds line up, so the order cannot silently drift). Forward values are still compared
# with the plain float64 run (a flip there moves one value by ~1e-6).
@contextlib.contextmanager
def our_branches():
    """Record the ReLU masks and max-pool argmaxes of minipsp's CPU kernels, in call order."""
    from minipsp.kernels.max_pool2d import cpu as pool_cpu
    from minipsp.kernels.relu import cpu as relu_cpu

    taken, relu_forward, pool_forward = [], relu_cpu.relu_forward, pool_cpu.max_pool2d_forward

    def relu_recorded(x, out=None):
        y = relu_forward(x, out)
        taken.append(("relu", y > 0))
        return y

    def pool_recorded(x, *args):
        y, indices = pool_forward(x, *args)
        taken.append(("max_pool", indices.copy()))
        return y, indices

    relu_cpu.relu_forward, pool_cpu.max_pool2d_forward = relu_recorded, pool_recorded
    try:
        yield taken
    finally:
        relu_cpu.relu_forward, pool_cpu.max_pool2d_forward = relu_forward, pool_forward


@contextlib.contextmanager
def torch_branches(model, follow=None):
    """Record the branches of a torch model's nn.ReLU / nn.MaxPool2d calls, or (follow) make them
    take the given ones: output = input * mask, or the input at the given argmax."""
    taken, inputs, handles = [], {}, []

    def before(module, args):
        inputs[module] = args[0].clone()        # the ReLUs are in place: keep what they were given

    def after(module, args, output):
        x = inputs.pop(module)
        kind = "relu" if isinstance(module, tnn.ReLU) else "max_pool"
        if follow is None:
            if kind == "relu":
                taken.append((kind, (output > 0).numpy()))
            else:
                flat = tF.max_pool2d(x, module.kernel_size, module.stride, module.padding, return_indices=True)[1]
                taken.append((kind, flat.numpy()))
            return None
        assert taken.__len__() < len(follow), "the torch model took more ReLU / max-pool steps than minipsp"
        want_kind, branch = follow[len(taken)]
        taken.append(want_kind)
        assert want_kind == kind and branch.shape == tuple(output.shape), (
            f"step {len(taken)}: minipsp took {want_kind} {branch.shape}, torch {kind} {tuple(output.shape)}")
        if kind == "relu":
            return x * torch.from_numpy(np.ascontiguousarray(branch)).to(x.dtype)
        index = torch.from_numpy(branch).flatten(2)
        return x.flatten(2).gather(2, index).view(output.shape)

    for module in model.modules():
        if isinstance(module, (tnn.ReLU, tnn.MaxPool2d)):
            handles += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    try:
        yield taken
    finally:
        for handle in handles:
            handle.remove()
    if follow is not None:
        assert len(taken) == len(follow), f"torch took {len(taken)} ReLU / max-pool steps, minipsp {len(follow)}"


def same_branch_truth(theirs64, branches, x, y):
    """The gradients of float64 PyTorch taking the given branches (a fresh copy of the model)."""
    model = copy.deepcopy(theirs64)
    model.zero_grad(set_to_none=True)
    with torch_branches(model, follow=branches):
        return run(model, x, y, np.float64)


def max_error(a, b):
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())


def check_parity(tmp_path, train, layers=18, n=2, size=33, classes=5, dropout=0.0, via_semseg_checkpoint=False,
                 dtypes=(np.float64, np.float32), **config):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 3, size, size))
    y = rng.integers(0, classes, size=(n, size, size))
    y[:, :4, :] = 255  # some ignored pixels
    theirs = TorchPSPNet(layers=layers, classes=classes, dropout=dropout, **config)
    randomise(theirs, torch.tensor(x, dtype=torch.float32))
    path = tmp_path / "pspnet.pth"
    if via_semseg_checkpoint:  # semseg's training checkpoint: DataParallel prefix, nested, with extras
        state = {f"module.{k}": v for k, v in theirs.state_dict().items()}
        torch.save({"epoch": 100, "state_dict": state, "optimizer": {"param_groups": []}}, path)
    else:
        torch.save(theirs.state_dict(), path)

    ours = PSPNet(layers=layers, classes=classes, dropout=dropout, **config)
    loaded = minipsp.load(path)
    theirs64 = copy.deepcopy(theirs).double()
    theirs.train(train)
    theirs64.train(train)
    ours.train(train)
    untouched64 = copy.deepcopy(theirs64)          # for the same-branch truths (run() moves BN state)
    truth = run(theirs64, x, y, np.float64)
    with torch_branches(theirs) as torch32_branches:
        torch32 = run(theirs, x, y, np.float32)
    for dtype in dtypes:
        ours.to(dtype)
        if via_semseg_checkpoint:
            minipsp.load_checkpoint(ours, loaded)
        else:
            ours.load_state_dict(loaded)
        ours.zero_grad()
        with our_branches() as branches:
            result = run(ours, x, y, dtype)
        assert result.keys() == truth.keys()
        for name, expected in truth.items():
            if expected is None:
                assert result[name] is None, name
                continue
            assert result[name] is not None, f"{name} is missing"
            assert result[name].shape == expected.shape, name
            scale = max(float(np.abs(expected).max()), 1e-12)
            err = max_error(result[name], expected)
            if dtype == np.float64:
                assert err <= 1e-7 * scale, f"float64 {name}: max abs error {err:.3g}, largest |value| {scale:.3g}"
            elif not name.startswith("grad of"):
                bound = max(3 * max_error(torch32[name], expected), 2e-4 * scale)
                assert err <= bound, (f"float32 {name}: max abs error from float64 {err:.3g}, allowed {bound:.3g} "
                                      f"(torch float32's: {max_error(torch32[name], expected):.3g})")
        if dtype == np.float32 and train:
            ours_error = gradient_error(result, same_branch_truth(untouched64, branches, x, y))
            torch_error = gradient_error(torch32, same_branch_truth(untouched64, torch32_branches, x, y))
            assert ours_error <= max(2e-4, 2 * torch_error), (
                f"float32 gradients: relative L2 error from float64 {ours_error:.3g} "
                f"(torch float32's: {torch_error:.3g})")
    return ours


def gradient_error(result, truth):
    """||g - g_true|| / ||g_true|| over all parameter gradients together, g_true in float64."""
    names = [name for name in truth if name.startswith("grad of")]
    g_true = np.concatenate([truth[name].ravel() for name in names])
    diff = np.concatenate([(np.asarray(result[name], np.float64) - truth[name]).ravel() for name in names])
    return float(np.linalg.norm(diff) / np.linalg.norm(g_true))


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_resnet50_pspnet(tmp_path, train):
    check_parity(tmp_path, train, layers=50, dropout=0.0 if train else 0.1, via_semseg_checkpoint=train)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_resnet18_pspnet_default_head(tmp_path, train):
    check_parity(tmp_path, train, layers=18, dropout=0.0 if train else 0.1)


@pytest.mark.parametrize("bins, pooling, reduction_dim", [
    ((1,), "avg", None),            # B1-AVE with DR
    ((1, 2, 3, 6), "max", 512),     # B1236-MAX without DR: every branch keeps all 512 channels
])
def test_resnet18_pyramid_variants_train(tmp_path, bins, pooling, reduction_dim):
    # 25 x 25 input: a 4 x 4 feature map, so the 6 x 6 bins overlap (more bins than pixels)
    check_parity(tmp_path, True, size=25, bins=bins, pooling=pooling, reduction_dim=reduction_dim,
                 dtypes=(np.float64,))


def test_resnet18_baseline_without_ppm_or_aux_plain_stem_os16(tmp_path):
    model = check_parity(tmp_path, True, use_ppm=False, aux=False, deep_stem=False, output_stride=16, zoom_factor=16,
                         dtypes=(np.float64,))
    assert "ppm.features.0.1.weight" not in model.state_dict() and "aux.0.weight" not in model.state_dict()


def test_resnet18_max_pooling_eval(tmp_path):
    check_parity(tmp_path, False, size=25, bins=(1, 2, 3, 6), pooling="max", dtypes=(np.float64,))


# -- names, helpers and bad input ------------------------------------------------------------
def test_state_dict_keys_are_semsegs():
    keys = list(PSPNet(layers=50, classes=3).state_dict())
    theirs = list(TorchPSPNet(layers=50, classes=3).state_dict())
    assert keys == theirs
    for key in ("layer0.0.weight", "layer0.7.running_var", "layer1.0.conv1.weight", "layer3.0.downsample.1.bias",
                "ppm.features.3.1.weight", "ppm.features.3.2.num_batches_tracked", "cls.4.bias", "aux.4.weight"):
        assert key in keys, key


def test_parameter_groups_split_backbone_and_new_layers():
    model = PSPNet(layers=18, classes=3)
    backbone, head = model.parameter_groups()
    assert len(backbone) + len(head) == len(list(model.parameters()))
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(names[id(p)].split(".")[0] in ("layer0", "layer1", "layer2", "layer3", "layer4") for p in backbone)
    assert {names[id(p)].split(".")[0] for p in head} == {"ppm", "cls", "aux"}


def test_imagenet_resnet_weights_load_into_the_backbone():
    torch.manual_seed(0)
    for deep in (False, True):
        imagenet = TorchResNet(*DEPTHS[18], deep_base=deep).state_dict()
        model = PSPNet(layers=18, classes=3, deep_stem=deep)
        model.load_backbone({k: v.numpy() for k, v in imagenet.items()})
        state = model.state_dict()
        np.testing.assert_array_equal(state["layer0.0.weight"], imagenet["conv1.weight"].numpy())
        np.testing.assert_array_equal(state["layer4.1.bn2.running_var"], imagenet["layer4.1.bn2.running_var"].numpy())
    plain = resnet18()  # minipsp's ResNet has torchvision's names itself
    plain.load_state_dict({k: v.numpy() for k, v in TorchResNet(*DEPTHS[18], deep_base=False).state_dict().items()})
    with pytest.raises(RuntimeError, match="missing keys: layer0.3.weight"):
        PSPNet(layers=18, classes=3, deep_stem=True).load_backbone(plain.state_dict())


def test_bad_input_is_named():
    model = PSPNet(layers=18, classes=3).eval()
    with pytest.raises(ValueError, match=r"expected an input of shape \(N, 3, H, W\).*\(1, 4, 33, 33\)"):
        model(minipsp.zeros(1, 4, 33, 33))
    with pytest.raises(ValueError, match=r"one more than a multiple of 8.*got H=32.*Crop or pad to 25 or 33 x 33"):
        model(minipsp.zeros(1, 3, 32, 33))
    with pytest.raises(ValueError, match=r"layers must be one of \[18, 34, 50, 101, 152\].*got 42"):
        PSPNet(layers=42)
    with pytest.raises(ValueError, match="pooling must be 'avg' or 'max'"):
        PSPNet(layers=18, pooling="median")
    model.train()
    with pytest.raises(ValueError, match="in training mode pass the labels"):
        model(minipsp.zeros(2, 3, 33, 33))
    with pytest.raises(ValueError, match=r"labels y must have shape \(N, H', W'\) = \(2, 33, 33\)"):
        model(minipsp.zeros(2, 3, 33, 33), minipsp.zeros(2, 32, 32).long())


def test_summary_lists_blocks_shapes_and_counts():
    model = PSPNet(layers=18, classes=3)
    text = summary(model, (1, 3, 33, 33))
    assert "layer4" in text and "(1, 512, 5, 5)" in text and "(1, 3, 33, 33)" in text
    assert f"parameters: {model.num_parameters():,}" in text
    assert model.training  # summary evaluates in eval mode and restores the mode
    assert "ppm.features" in model.summary((1, 3, 33, 33)) or "ppm" in model.summary((1, 3, 33, 33))
