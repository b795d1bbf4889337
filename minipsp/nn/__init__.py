"""Neural-network building blocks with PyTorch's names.

    import minipsp.nn as nn
    import minipsp.nn.functional as F      # the ops: conv2d, batch_norm, interpolate, ...

`Module`, `Parameter`, `Sequential` and `ModuleList` are the machinery (module.py); the layers
(layers.py) wrap one functional op each; `nn.init` fills weights as torch.nn.init does.
Several processes: `nn.SyncBatchNorm` and `nn.parallel.DistributedDataParallel` (docs/distributed.md).
"""

from minipsp.nn import functional, init
from minipsp.nn.layers import (
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2d,
    BatchNorm2d,
    Conv2d,
    CrossEntropyLoss,
    Dropout2d,
    Identity,
    MaxPool2d,
    ReLU,
)
from minipsp.nn.module import Module, ModuleList, Parameter, Sequential
from minipsp.nn.sync_batch_norm import SyncBatchNorm

__all__ = [
    "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "BatchNorm2d", "Conv2d", "CrossEntropyLoss", "Dropout2d", "Identity",
    "MaxPool2d", "Module", "ModuleList", "Parameter", "ReLU", "Sequential", "SyncBatchNorm", "functional", "init",
]
