"""Models: the dilated ResNet backbone, the pyramid pooling module and PSPNet (semseg's names).

    from minipsp.models import PSPNet
    model = PSPNet(layers=50, classes=150)          # ResNet-50, deep stem, output stride 8, PPM (1, 2, 3, 6)
    minipsp.load_checkpoint(model, "train_epoch_100.pth")   # a hszhao/semseg checkpoint
    PSPNet(backbone="shallow", width=32, classes=10)        # six dilated layers, receptive field 131 (the thesis)
"""

from minipsp.models.ppm import PPM
from minipsp.models.pspnet import PSPNet
from minipsp.models.resnet import (
    BasicBlock,
    Bottleneck,
    ResNet,
    resnet,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnet152,
)
from minipsp.models.shallow import ShallowDilatedNet
from minipsp.models.summary import summary

__all__ = [
    "PPM", "PSPNet", "BasicBlock", "Bottleneck", "ResNet", "resnet", "resnet18", "resnet34", "resnet50",
    "resnet101", "resnet152", "ShallowDilatedNet", "summary",
]
