"""PSPNet (Zhao et al., CVPR 2017), laid out as in the paper's Figure 3 and named as in hszhao/semseg.

    image (N, 3, H, W)
      -> layer0 (stem) -> layer1 -> layer2 -> layer3 -> layer4      dilated ResNet, output stride 8
                                                |          |
                                     aux head (training)   PPM: x and 4 pooled-and-upsampled maps
                                                |          |
                                                |        cls: 3x3 conv 512, BN, ReLU, Dropout2d, 1x1 conv
      both upsampled x zoom_factor (bilinear, align_corners=True) -> logits (N, classes, H, W)

Sizes follow semseg's rule: (H - 1) % 8 == 0 (473, 713, or 33 for tests), the features are
(H - 1) / 8 + 1 on a side and the logits (H - 1) / 8 * zoom_factor + 1, which is H at zoom 8.
Training loss: cross entropy (ignore_index 255) on the upsampled logits, and the same on the aux
head's; the trainer adds them as main + 0.4 * aux (the paper's Table 2).

`use_ppm=False` is the paper's baseline (Table 1): the head sits directly on layer4.
`backbone="shallow"` swaps the dilated ResNet for minipsp.models.shallow's six-layer dilated net (a
theoretical receptive field of 131 pixels with the head, 65 either side of a pixel, while a 129 x 129
SyntheticScene puts the cue that names a pixel's class 40-100 pixels away): with and without the PPM
it shows the paper's thesis at laptop scale (benchmarks/thesis.py, notebook 08).
`layers` and `deep_stem` do not apply to it, and its heads are narrower (width and width / 2).
The state-dict keys are semseg's (`layer0.*` .. `layer4.*`, `ppm.features.{i}.*`, `cls.*`,
`aux.*`), so its released checkpoints load with `minipsp.load_checkpoint(model, path)`.
"""

from __future__ import annotations

import numbers

import minipsp.nn as nn
import minipsp.nn.functional as F
from minipsp.models.ppm import PPM
from minipsp.models.resnet import RESNET_LAYERS, resnet
from minipsp.models.shallow import ShallowDilatedNet
from minipsp.tensor import Tensor

__all__ = ["PSPNet"]

BACKBONE = ("layer0", "layer1", "layer2", "layer3", "layer4")
BACKBONES = ("resnet", "shallow")  # the dilated ResNet (the paper's) or minipsp.models.shallow's six layers
NEW_LAYERS = ("ppm", "cls", "aux")  # trained from scratch, with 10x the backbone's learning rate


def _head(in_dim, mid_dim, classes, dropout):
    """3x3 conv -> BN -> ReLU -> Dropout2d -> 1x1 conv (keys .0, .1, .4): semseg's cls and aux."""
    return nn.Sequential(
        nn.Conv2d(in_dim, mid_dim, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(mid_dim),
        nn.ReLU(inplace=True),
        nn.Dropout2d(p=dropout),
        nn.Conv2d(mid_dim, classes, kernel_size=1),
    )


class PSPNet(nn.Module):
    def __init__(self, layers=50, bins=(1, 2, 3, 6), classes=150, zoom_factor=8, use_ppm=True, pooling="avg",
                 reduction_dim=None, dropout=0.1, aux=True, deep_stem=True, ignore_index=255, output_stride=8,
                 width=64, backbone="resnet"):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"PSPNet: backbone must be one of {BACKBONES}; got {backbone!r}")
        if backbone == "shallow" and output_stride != 8:
            raise ValueError(f"PSPNet: the shallow backbone has output stride 8; got output_stride={output_stride!r}")
        if isinstance(layers, bool) or not isinstance(layers, numbers.Integral) or layers not in RESNET_LAYERS:
            raise ValueError(f"PSPNet: layers must be one of {sorted(RESNET_LAYERS)} (the ResNet depth); "
                             f"got {layers!r}")
        if not isinstance(classes, int) or classes < 2:
            raise ValueError(f"PSPNet: classes must be an int >= 2; got {classes!r}")
        if not isinstance(zoom_factor, int) or zoom_factor < 1:
            raise ValueError(f"PSPNet: zoom_factor must be a positive int (semseg uses 1, 2, 4 or 8); "
                             f"got {zoom_factor!r}")
        if output_stride not in (8, 16):
            raise ValueError(f"PSPNet: output_stride must be 8 or 16; got {output_stride!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"PSPNet: dropout must be in [0, 1); got {dropout!r}")
        if use_ppm and (not bins or not all(isinstance(b, numbers.Integral) and b >= 1 for b in bins)):
            raise ValueError(f"PSPNet: bins must be a non-empty list of positive ints such as (1, 2, 3, 6); "
                             f"got {bins!r}")
        self.layers, self.classes, self.zoom_factor = layers, classes, zoom_factor
        self.use_ppm, self.ignore_index, self.output_stride = use_ppm, ignore_index, output_stride
        self.width, self.backbone = width, backbone

        if backbone == "resnet":
            net = resnet(layers, deep_stem=deep_stem, output_stride=output_stride, width=width)
            self.layer0 = net.stem()
            expansion = RESNET_LAYERS[layers][0].expansion
            fea_dim = 8 * width * expansion  # 2048 for ResNet-50, 512 for ResNet-18 (at width 64)
            aux_dim = 4 * width * expansion  # layer3: 1024 channels at ResNet-50
            # The heads' hidden widths, 512 and 256 in semseg, shrink with a narrow backbone (width < 64).
            cls_mid, aux_mid = 8 * width, 4 * width
        else:
            net = ShallowDilatedNet(width)
            self.layer0 = net.layer0
            fea_dim, aux_dim = net.out_channels, net.aux_channels
            cls_mid, aux_mid = width, width // 2
        self.layer1, self.layer2 = net.layer1, net.layer2
        self.layer3, self.layer4 = net.layer3, net.layer4

        if use_ppm:
            bins = tuple(bins)
            if reduction_dim is None:
                if fea_dim % len(bins):
                    raise ValueError(f"PSPNet: {fea_dim} feature channels do not split evenly over {len(bins)} "
                                     "bins; pass reduction_dim explicitly")
                reduction_dim = fea_dim // len(bins)  # the paper's DR
            self.ppm = PPM(fea_dim, reduction_dim, bins, pooling)
            fea_dim = self.ppm.out_dim
        self.cls = _head(fea_dim, cls_mid, classes, dropout)
        if aux:
            self.aux = _head(aux_dim, aux_mid, classes, dropout)
        else:
            self.aux = None

    # -- sizes ---------------------------------------------------------------------------------
    def output_size(self, height, width):
        """Logit size for an input of height x width (checks semseg's (H - 1) % 8 == 0 rule)."""
        stride = self.output_stride
        bad = [f"{name}={n}" for name, n in (("H", height), ("W", width)) if (n - 1) % stride]
        if bad:
            def nearest(n):
                below = (n - 1) // stride * stride + 1
                return f"{below} or {below + stride}" if below > 1 else f"{below + stride}"
            raise ValueError(
                f"PSPNet: input height and width must be one more than a multiple of {stride} (e.g. 473 or 713) "
                f"so that the features and the upsampled logits line up; got {', '.join(bad)}. "
                f"Crop or pad to " + " x ".join(nearest(n) for n in (height, width)) + "."
            )
        return ((height - 1) // stride * self.zoom_factor + 1, (width - 1) // stride * self.zoom_factor + 1)

    def _check_input(self, x):
        if not isinstance(x, Tensor):
            raise TypeError(f"PSPNet: expected the image batch as a minipsp Tensor; got {type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"PSPNet: expected an input of shape (N, 3, H, W) (RGB images); got {tuple(x.shape)}")
        return self.output_size(x.shape[2], x.shape[3])

    # -- forward -------------------------------------------------------------------------------
    def forward(self, x, y=None):
        """Eval: logits (N, classes, H', W'). Training: (logits, main_loss, aux_loss or None)."""
        size = self._check_input(x)
        if self.training:
            if y is None:
                raise ValueError("PSPNet.forward: in training mode pass the labels, model(x, y) with y (N, H, W); "
                                 "to predict, call model.eval() first")
            y = y if isinstance(y, Tensor) else Tensor(y)
            if tuple(y.shape) != (x.shape[0], *size):
                raise ValueError(f"PSPNet.forward: labels y must have shape (N, H', W') = "
                                 f"{(x.shape[0], *size)}; got {tuple(y.shape)}")
        x = self.layer0(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x_aux = self.layer3(x)  # (N, 1024, H/8, W/8) at ResNet-50: the aux head's input
        x = self.layer4(x_aux)  # (N, 2048, H/8, W/8)
        if self.use_ppm:
            x = self.ppm(x)     # (N, 4096, H/8, W/8)
        logits = self._upsample(self.cls(x), size)  # (N, classes, H', W')
        if not self.training:
            return logits
        main_loss = F.cross_entropy(logits, y, ignore_index=self.ignore_index)
        aux_loss = None
        if self.aux is not None:
            aux_logits = self._upsample(self.aux(x_aux), size)
            aux_loss = F.cross_entropy(aux_logits, y, ignore_index=self.ignore_index)
        return logits, main_loss, aux_loss

    def _upsample(self, x, size):
        if self.zoom_factor == 1:
            return x
        return F.interpolate(x, size=size, mode="bilinear", align_corners=True)

    # -- training helpers ----------------------------------------------------------------------
    def parameter_groups(self):
        """(backbone parameters, new-layer parameters): the pretrained ResNet and ppm/cls/aux.

        The paper trains the new layers with 10x the base learning rate, e.g.
        SGD([{"params": backbone, "lr": base}, {"params": head, "lr": 10 * base}]).
        """
        backbone = [p for name in BACKBONE for p in getattr(self, name).parameters()]
        head = [p for name in NEW_LAYERS if getattr(self, name, None) is not None
                for p in getattr(self, name).parameters()]
        return backbone, head

    def load_backbone(self, state_dict, strict=True):
        """Load ImageNet ResNet weights with torchvision / semseg names (conv1, bn1, layer1...).

        The stem's names are mapped to `layer0.<index>`; the classifier `fc` is ignored. With
        strict=True every backbone tensor must be present and no other key may appear.
        """
        stem = {"conv1": "layer0.0", "bn1": "layer0.1", "conv2": "layer0.3", "bn2": "layer0.4",
                "conv3": "layer0.6", "bn3": "layer0.7"}
        renamed = {}
        for key, value in state_dict.items():
            first, _, rest = key.partition(".")
            if first == "fc":
                continue
            renamed[f"{stem[first]}.{rest}" if first in stem else key] = value
        state = self.state_dict()
        backbone_keys = [k for k in state if k.split(".")[0] in BACKBONE]
        missing = [k for k in backbone_keys if k not in renamed]
        unexpected = [k for k in renamed if k not in backbone_keys]
        if strict and (missing or unexpected):
            raise RuntimeError("PSPNet.load_backbone: the ImageNet weights do not fit this backbone "
                               f"(layers={self.layers}, deep stem: {'layer0.3.weight' in state}).\n"
                               f"  missing keys: {', '.join(missing) or 'none'}\n"
                               f"  unexpected keys: {', '.join(unexpected) or 'none'}")
        state.update({k: v for k, v in renamed.items() if k in state})
        return self.load_state_dict(state, strict=True)

    def summary(self, input_shape=(1, 3, 65, 65)):
        """Parameter counts per block and output shapes, as text (see minipsp.models.summary)."""
        from minipsp.models.summary import summary

        return summary(self, input_shape)

    def extra_repr(self):
        width = f", width={self.width}" if self.width != 64 else ""
        net = f"layers={self.layers}" if self.backbone == "resnet" else "backbone='shallow'"
        return f"{net}, classes={self.classes}, zoom_factor={self.zoom_factor}{width}"
