"""A shallow dilated backbone whose receptive field is smaller than the scene: the paper's thesis on a laptop.

PSPNet's argument (Zhao et al. 2017, sections 3.1-3.2) is that a fully convolutional network labels
a pixel from a window around it, and when that window does not reach what names the scene (the
water a boat floats on, the street a car drives on) it confuses look-alike classes; the pyramid
pooling module fixes it by giving every pixel a summary of the whole image. A dilated ResNet-18 sees
503 pixels in theory, more than a whole 129 x 129 SyntheticScene, so at laptop scale it needs no such
help (notebook 10). This backbone is what a dilated ResNet looks like with most of its blocks taken
out: six 3x3 conv-BN-ReLU layers, output stride 8 like PSPNet's, the last two dilated by 2 and 4.

    layer0   conv 3x3 /2 -> width/2,  conv 3x3 -> width       stride 2
    layer1   conv 3x3 /2 -> width                              stride 4
    layer2   conv 3x3 /2 -> 2 width                            stride 8
    layer3   conv 3x3, dilation 2 -> 2 width                   (the aux head's input)
    layer4   conv 3x3, dilation 4 -> 2 width                   (the PPM's input)

Receptive field (a k x k layer with dilation d after strides whose product is `jump` widens it by
(k - 1) d jump pixels): 3, 7, 11, 19, 51, 115 after the six convs; PSPNet's 3x3 head conv adds
2 x 8 = 16, so one output logit of `PSPNet(backbone="shallow")` depends on a 131 x 131 window at most,
most of it near its centre (the effective receptive field, section 3.2): a logit on the bottom row of a
129 x 129 scene draws no gradient at all from the skyline and the far band (notebook 08). Its stages are named
layer0..layer4 like the ResNet's, so PSPNet's heads, parameter groups and summary work unchanged:

    PSPNet(backbone="shallow", width=32, classes=10, use_ppm=True)    # FCN + PPM
    PSPNet(backbone="shallow", width=32, classes=10, use_ppm=False)   # the FCN baseline

It has no pretrained weights: it exists to show the mechanism (benchmarks/thesis.py, notebook 08).
"""

from __future__ import annotations

import minipsp.nn as nn

__all__ = ["ShallowDilatedNet", "receptive_field"]


def conv_bn_relu(in_planes, out_planes, stride=1, dilation=1):
    """3x3 conv (padding = dilation keeps the size at stride 1) -> BN -> ReLU."""
    return [nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(out_planes), nn.ReLU(inplace=True)]


class ShallowDilatedNet(nn.Module):
    """Six conv-BN-ReLU layers at output stride 8 (dilations 2 and 4 at the end); theoretical receptive
    field 115 pixels. (N, 3, H, W) -> (N, 2 width, (H - 1) / 8 + 1, (W - 1) / 8 + 1)."""

    output_stride = 8

    def __init__(self, width=32):
        super().__init__()
        if not isinstance(width, int) or isinstance(width, bool) or width < 2 or width % 2:
            raise ValueError(f"ShallowDilatedNet: width must be an even int >= 2 (its first conv has width / 2 "
                             f"channels); got {width!r}")
        w = width
        self.width = w
        self.layer0 = nn.Sequential(*conv_bn_relu(3, w // 2, stride=2), *conv_bn_relu(w // 2, w))
        self.layer1 = nn.Sequential(*conv_bn_relu(w, w, stride=2))
        self.layer2 = nn.Sequential(*conv_bn_relu(w, 2 * w, stride=2))
        self.layer3 = nn.Sequential(*conv_bn_relu(2 * w, 2 * w, dilation=2))
        self.layer4 = nn.Sequential(*conv_bn_relu(2 * w, 2 * w, dilation=4))
        for module in self.modules():  # as the ResNet's convs (torchvision's initialisation)
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    @property
    def out_channels(self):
        """Channels of layer4, the PPM's input."""
        return 2 * self.width

    @property
    def aux_channels(self):
        """Channels of layer3, the aux head's input."""
        return 2 * self.width

    @property
    def receptive_field(self):
        """Theoretical receptive field of one layer4 pixel, in input pixels (115)."""
        return receptive_field([self.layer0, self.layer1, self.layer2, self.layer3, self.layer4])

    def forward(self, x):
        return self.layer4(self.layer3(self.layer2(self.layer1(self.layer0(x)))))


def receptive_field(modules, size=1, jump=1):
    """Walk the convolutions and max-poolings of `modules` in order and return the receptive field.

    A k x k layer with dilation d widens the field by (k - 1) * d * jump input pixels, where `jump`
    (the product of the strides before it) is the distance in input pixels between neighbouring
    pixels of its input. A ResNet's `downsample` shortcuts are skipped: they run beside the blocks'
    3x3 path and see less. `size` and `jump` start a walk where another one ended.
    """
    for module in modules:
        for name, m in module.named_modules():
            if "downsample" in name.split("."):
                continue
            if isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
                k, s, d = (v[0] if isinstance(v, tuple) else v for v in (m.kernel_size, m.stride, m.dilation))
                size += (k - 1) * d * jump
                jump *= s
    return size
