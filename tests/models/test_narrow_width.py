"""`width`: a narrow ResNet / PSPNet for laptop-scale experiments has the standard one's layout, scaled.

The standard network (width 64) is checked against PyTorch in test_pspnet_parity.py; here we check
that width w gives the same modules and keys with every channel count multiplied by w / 64.
"""

import numpy as np
import pytest

from minipsp.config import ConfigError, TrainConfig
from minipsp.models import PSPNet
from minipsp.models.resnet import resnet
from minipsp.tensor import Tensor

CLASSES = 5


def scaled(shape, factor, key):
    """The expected shape at width 64 * factor: channel axes scale, except RGB input and class outputs."""
    out = list(shape)
    if len(shape) == 0:
        return tuple(out)
    if not key.endswith((".4.weight", ".4.bias")) or not key.startswith(("cls", "aux")):
        out[0] = int(shape[0] * factor)             # output channels (or the BN / bias length)
    if len(shape) == 4 and shape[1] != 3:
        out[1] = int(shape[1] * factor)             # input channels, except the first conv's RGB
    return tuple(out)


@pytest.mark.parametrize("layers, width, use_ppm", [(18, 16, True), (50, 32, True), (18, 8, False)])
def test_pspnet_width_scales_every_channel_count(layers, width, use_ppm):
    standard = PSPNet(layers=layers, classes=CLASSES, use_ppm=use_ppm).state_dict()
    narrow = PSPNet(layers=layers, classes=CLASSES, use_ppm=use_ppm, width=width).state_dict()
    assert list(narrow) == list(standard)          # same semseg names in the same order
    factor = width / 64
    for key, value in standard.items():
        assert tuple(narrow[key].shape) == scaled(value.shape, factor, key), key


def test_resnet_width_scales_stages():
    net = resnet(18, deep_stem=True, output_stride=8, width=16)
    assert net.conv1.weight.shape == (16, 3, 3, 3) and net.conv3.weight.shape == (32, 16, 3, 3)
    assert [net.layer1[0].conv1.weight.shape[0], net.layer2[0].conv1.weight.shape[0],
            net.layer3[0].conv1.weight.shape[0], net.layer4[0].conv1.weight.shape[0]] == [16, 32, 64, 128]


def test_narrow_pspnet_trains_one_step():
    model = PSPNet(layers=18, classes=CLASSES, width=8)
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 33, 33)).astype(np.float32))
    y = np.random.default_rng(1).integers(0, CLASSES, (2, 33, 33))
    logits, main_loss, aux_loss = model(x, y)
    assert logits.shape == (2, CLASSES, 33, 33)
    (main_loss + 0.4 * aux_loss).backward()
    assert all(p.grad is not None and np.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("width", [0, -16, 2.5, True])
def test_bad_width_is_named(width):
    with pytest.raises(ValueError, match="width must be a positive int"):
        PSPNet(layers=18, classes=CLASSES, width=width)


def test_config_rejects_bad_width():
    with pytest.raises(ConfigError, match="width"):
        TrainConfig(width=0)
