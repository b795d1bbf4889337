"""PSPNet in PyTorch with minipsp's (and hszhao/semseg's) state-dict keys: the benchmarks' yardstick.

    model = TorchPSPNet(layers=18, classes=8)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})

The same architecture as minipsp.models.PSPNet: dilated ResNet (deep stem, output stride 8), PPM,
`cls` head, `aux` head on layer3, bilinear upsampling with align_corners=True, cross entropy with
ignore_index 255. Written with plain torch.nn so the benchmark needs nothing but torch.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, dilation=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, dilation=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


BLOCKS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)), 50: (Bottleneck, (3, 4, 6, 3)),
          101: (Bottleneck, (3, 4, 23, 3)), 152: (Bottleneck, (3, 8, 36, 3))}


def _stage(block, inplanes, planes, blocks, stride, dilation):
    if dilation > 1:
        stride = 1
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(nn.Conv2d(inplanes, planes * block.expansion, 1, stride, bias=False),
                                   nn.BatchNorm2d(planes * block.expansion))
    layers = [block(inplanes, planes, stride, downsample, dilation)]
    layers += [block(planes * block.expansion, planes, dilation=dilation) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def _head(in_dim, mid_dim, classes, dropout):
    return nn.Sequential(nn.Conv2d(in_dim, mid_dim, 3, padding=1, bias=False), nn.BatchNorm2d(mid_dim),
                         nn.ReLU(inplace=True), nn.Dropout2d(p=dropout), nn.Conv2d(mid_dim, classes, 1))


class PPM(nn.Module):
    def __init__(self, in_dim, reduction_dim, bins, pooling="avg"):
        super().__init__()
        pool = nn.AdaptiveAvgPool2d if pooling == "avg" else nn.AdaptiveMaxPool2d
        self.features = nn.ModuleList([
            nn.Sequential(pool(b), nn.Conv2d(in_dim, reduction_dim, 1, bias=False), nn.BatchNorm2d(reduction_dim),
                          nn.ReLU(inplace=True)) for b in bins])

    def forward(self, x):
        size = x.shape[2:]
        return torch.cat([x] + [F.interpolate(f(x), size, mode="bilinear", align_corners=True)
                                for f in self.features], 1)


class TorchPSPNet(nn.Module):
    def __init__(self, layers=50, bins=(1, 2, 3, 6), classes=150, use_ppm=True, pooling="avg", reduction_dim=None,
                 dropout=0.1, aux=True):
        super().__init__()
        block, counts = BLOCKS[layers]
        relu = nn.ReLU(inplace=True)
        self.layer0 = nn.Sequential(
            nn.Conv2d(3, 64, 3, 2, 1, bias=False), nn.BatchNorm2d(64), relu,
            nn.Conv2d(64, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), relu,
            nn.Conv2d(64, 128, 3, 1, 1, bias=False), nn.BatchNorm2d(128), relu,
            nn.MaxPool2d(3, 2, 1))
        e = block.expansion
        self.layer1 = _stage(block, 128, 64, counts[0], 1, 1)
        self.layer2 = _stage(block, 64 * e, 128, counts[1], 2, 1)
        self.layer3 = _stage(block, 128 * e, 256, counts[2], 2, 2)
        self.layer4 = _stage(block, 256 * e, 512, counts[3], 2, 4)
        fea_dim = 512 * e
        self.use_ppm = use_ppm
        if use_ppm:
            reduction_dim = reduction_dim or fea_dim // len(bins)
            self.ppm = PPM(fea_dim, reduction_dim, bins, pooling)
            fea_dim += len(bins) * reduction_dim
        self.cls = _head(fea_dim, 512, classes, dropout)
        self.aux = _head(256 * e, 256, classes, dropout) if aux else None

    def forward(self, x, y=None):
        size = x.shape[2:]
        x = self.layer2(self.layer1(self.layer0(x)))
        x_aux = self.layer3(x)
        x = self.layer4(x_aux)
        if self.use_ppm:
            x = self.ppm(x)
        logits = F.interpolate(self.cls(x), size, mode="bilinear", align_corners=True)
        if not self.training:
            return logits
        main_loss = F.cross_entropy(logits, y, ignore_index=255)
        aux_loss = None
        if self.aux is not None:
            aux_logits = F.interpolate(self.aux(x_aux), size, mode="bilinear", align_corners=True)
            aux_loss = F.cross_entropy(aux_logits, y, ignore_index=255)
        return logits, main_loss, aux_loss
