"""ResNet (He et al. 2016) with torchvision's names, an optional deep stem, and dilation.

    resnet50(deep_stem=True, output_stride=8)     # PSPNet's backbone

Stages and sizes for a 473 x 473 image (C at ResNet-50 / ResNet-18), output stride 8:

    stem      conv 7x7/2 (plain) or three 3x3 convs, the first /2 (deep), then max pool 3/2
    layer1    256 / 64 channels     119 x 119    (stride 4)
    layer2    512 / 128             60 x 60      (stride 8)
    layer3    1024 / 256            60 x 60      dilation 2 instead of stride 2
    layer4    2048 / 512            60 x 60      dilation 4 instead of stride 2

Dilation keeps the feature map large without changing any weight: in a dilated stage every stride
becomes 1 and every 3x3 conv samples its taps `d` pixels apart (padding d keeps the size), so
the receptive field grows as it would have with the stride. For Bottleneck that is `conv2`
(semseg's rule: conv2's dilation = padding = d, stride 1, and `downsample.0` stride 1); for
BasicBlock both 3x3 convs. Output stride 16 dilates only layer4 (by 2).

Parameter names are torchvision's (`conv1`, `bn1`, `layer1.0.conv1`, `layer1.0.downsample.0`,
`fc`), and the deep stem adds semseg's `conv2, bn2, conv3, bn3`, so both ImageNet checkpoints load.
"""

from __future__ import annotations

import numpy as np

import minipsp.nn as nn

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "resnet", "resnet18", "resnet34", "resnet50", "resnet101",
           "resnet152", "RESNET_LAYERS"]


def conv3x3(in_planes, out_planes, stride=1, dilation=1):
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """y = relu(x' + bn2(conv2(relu(bn1(conv1(x)))))), both convs 3x3; x' = downsample(x) or x."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, dilation=1):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride, dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, 1, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (stride, dilation) -> 1x1 expand (x4), plus the shortcut, then ReLU."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, dilation=1):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride, dilation)  # the stride sits on the 3x3 conv (ResNet v1.5)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


# Blocks per stage; the depth counts the weighted layers (e.g. 50 = 1 + 3 * (3 + 4 + 6 + 3) + 1).
RESNET_LAYERS = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


class ResNet(nn.Module):
    """The ImageNet ResNet; `output_stride` 8 or 16 dilates the last stages (None or 32: plain).

    `deep_stem=True` replaces the 7x7 conv by three 3x3 convs (3 -> 64 /2, 64 -> 64, 64 -> 128),
    as PSPNet does, so `layer1` receives 128 channels instead of 64.

    `width` is the stem's and layer1's channel count (64 in every published ResNet); the stages
    have width, 2 width, 4 width and 8 width planes. A smaller width (16, 32) gives a narrow network
    for laptop-scale experiments, about (width / 64) ** 2 of the compute; it has no pretrained weights.
    """

    def __init__(self, block, layers, num_classes=1000, deep_stem=False, output_stride=None, width=64):
        super().__init__()
        if output_stride not in (None, 8, 16, 32):
            raise ValueError(f"ResNet: output_stride must be 8, 16 or 32 (None means 32); got {output_stride!r}")
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(f"ResNet: width must be a positive int (64 is the standard ResNet); got {width!r}")
        w = width
        dilations = {8: (1, 2, 4), 16: (1, 1, 2)}.get(output_stride, (1, 1, 1))
        self.deep_stem = deep_stem
        self.output_stride = output_stride or 32
        if deep_stem:
            self.conv1 = conv3x3(3, w, stride=2)
            self.bn1 = nn.BatchNorm2d(w)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = conv3x3(w, w)
            self.bn2 = nn.BatchNorm2d(w)
            self.conv3 = conv3x3(w, 2 * w)
            self.bn3 = nn.BatchNorm2d(2 * w)
            self.inplanes = 2 * w
        else:
            self.conv1 = nn.Conv2d(3, w, 7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(w)
            self.relu = nn.ReLU(inplace=True)
            self.inplanes = w
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, w, layers[0])
        self.layer2 = self._make_layer(block, 2 * w, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * w, layers[2], stride=2, dilation=dilations[1])
        self.layer4 = self._make_layer(block, 8 * w, layers[3], stride=2, dilation=dilations[2])
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = Linear(8 * w * block.expansion, num_classes)
        for module in self.modules():  # torchvision's initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block, planes, blocks, stride=1, dilation=1):
        """A stage of `blocks` blocks; dilation > 1 replaces the stage's stride."""
        if dilation > 1:
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, dilation)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, dilation=dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def stem(self):
        """The stem as one Sequential, in semseg's `layer0` order (convs at 0, 3, 6; max pool last)."""
        if self.deep_stem:
            return nn.Sequential(self.conv1, self.bn1, self.relu, self.conv2, self.bn2, self.relu,
                                 self.conv3, self.bn3, self.relu, self.maxpool)
        return nn.Sequential(self.conv1, self.bn1, self.relu, self.maxpool)

    def features(self, x):
        """(N, 3, H, W) -> layer4's map (N, 8 * width * expansion, H / output_stride, W / output_stride)."""
        x = self.stem()(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.fc(x.reshape(x.shape[0], -1))


class Linear(nn.Module):
    """y = x @ weight.T + bias (ResNet's ImageNet classifier `fc`; PSPNet does not use it)."""

    def __init__(self, in_features, out_features):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(np.empty((out_features, in_features), np.float32))
        self.bias = nn.Parameter(np.empty((out_features,), np.float32))
        bound = 1.0 / in_features ** 0.5  # torch's default: kaiming_uniform_(a=sqrt(5)) and its bias
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        return x @ self.weight.T + self.bias

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias=True"


def resnet(depth, **kwargs):
    """ResNet-`depth` for depth in 18, 34, 50, 101, 152."""
    if depth not in RESNET_LAYERS:
        raise ValueError(f"ResNet depth (layers) must be one of {sorted(RESNET_LAYERS)}; got {depth!r}")
    block, layers = RESNET_LAYERS[depth]
    return ResNet(block, layers, **kwargs)


def resnet18(**kwargs):
    return resnet(18, **kwargs)


def resnet34(**kwargs):
    return resnet(34, **kwargs)


def resnet50(**kwargs):
    return resnet(50, **kwargs)


def resnet101(**kwargs):
    return resnet(101, **kwargs)


def resnet152(**kwargs):
    return resnet(152, **kwargs)
