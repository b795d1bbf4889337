"""The layers PSPNet is built from, as Modules with PyTorch's names, arguments and initialisations.

Each layer holds its parameters (and buffers) and calls one op of `minipsp.nn.functional`, which
checks its input and picks the kernel. Shapes: N batch, C channels, H, W spatial.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

import minipsp.nn.functional as F
from minipsp.nn import init
from minipsp.nn.module import Module, Parameter
from minipsp.tensor import Tensor

__all__ = [
    "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "BatchNorm2d", "Conv2d", "CrossEntropyLoss", "Dropout2d", "Identity",
    "MaxPool2d", "ReLU",
]


def _pair(value, name):
    """(a, b) from an int, a one-element sequence (for both axes, as torch takes it) or a pair."""
    given = value
    if isinstance(value, (tuple, list)):
        if len(value) == 1:
            value = value[0]
        elif len(value) != 2:
            raise ValueError(f"Conv2d: {name} must be an int or a pair of ints; got {given!r}")
    values = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    # int() would floor them: kernel_size=2.5 made a 2 x 2 kernel, stride=1.5 a stride of 1, silently
    if any(not isinstance(v, (int, np.integer)) for v in values):
        raise TypeError(f"Conv2d: {name} must be an int or a pair of ints; got {given!r}")
    return tuple(int(v) for v in values)


class Conv2d(Module):
    """y = conv2d(x, weight, bias): weight (C_out, C_in, KH, KW), bias (C_out,).

    Output size per axis: floor((H + 2 * padding - dilation * (KH - 1) - 1) / stride) + 1.
    padding may also be 'valid' (0) or 'same' (the output keeps the input's size; stride 1 only).
    Initialised as PyTorch does: weight ~ kaiming_uniform_(a=sqrt(5)), i.e. U(-1/sqrt(fan_in),
    1/sqrt(fan_in)) with fan_in = C_in * KH * KW, and the bias from the same range.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True):
        super().__init__()
        if groups != 1:
            raise ValueError(f"Conv2d: only groups=1 is supported; got groups={groups}")
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"Conv2d: {name} must be a positive int; got {value!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        if min(self.kernel_size) <= 0:     # else kaiming's bound divides by fan_in = 0
            raise ValueError(f"Conv2d: kernel_size must be positive; got {kernel_size!r}")
        self.stride = _pair(stride, "stride")
        if isinstance(padding, str):  # kept as the string, as torch does; F.conv2d turns it into numbers
            if padding not in F.conv.PADDING_MODES:
                raise ValueError(f"Conv2d: padding must be an int, a pair of ints, 'valid' or 'same'; got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"Conv2d: padding='same' is not supported for strided convolutions (as in "
                                 f"torch); got stride={self.stride}. Give the padding as numbers instead")
            self.padding = padding
        else:
            self.padding = _pair(padding, "padding")
        self.dilation = _pair(dilation, "dilation")
        self.groups = 1
        self.weight = Parameter(np.empty((self.out_channels, self.in_channels, *self.kernel_size), np.float32))
        if bias:
            self.bias = Parameter(np.empty((self.out_channels,), np.float32))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(init.fan_in(self.weight))
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self):
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            text += f", padding={self.padding!r}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.bias is None:
            text += ", bias=False"
        return text


class BatchNorm2d(Module):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, per channel, over N, H and W.

    Training: mean and var are the batch's (var biased), and the running estimates move:
        running = (1 - momentum) * running + momentum * batch     (the batch var unbiased here)
    With momentum=None the running estimates are the cumulative average (factor 1 / batches seen).
    Evaluation: the running estimates are used. `num_batches_tracked` counts training batches, as
    PyTorch's does, so that checkpoints have the same keys.  Ref: Ioffe & Szegedy 2015.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        if not isinstance(num_features, (int, np.integer)) or num_features <= 0:
            raise ValueError(f"BatchNorm2d: num_features must be a positive int; got {num_features!r}")
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real):     # float('a'): NumPy-less ValueError
            raise TypeError(f"BatchNorm2d: eps must be a positive number (1e-5 by default); got {eps!r}")
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(np.ones(self.num_features, np.float32))
            self.bias = Parameter(np.zeros(self.num_features, np.float32))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(self.num_features, np.float32)))
            self.register_buffer("running_var", Tensor(np.ones(self.num_features, np.float32)))
            self.register_buffer("num_batches_tracked", Tensor(np.zeros((), np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self):
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            self.num_batches_tracked.data = self.num_batches_tracked.data * 0

    def forward(self, x):
        if x.ndim != 4:
            raise ValueError(f"BatchNorm2d: expected a 4-D input (N, C, H, W); got shape {tuple(x.shape)}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data = self.num_batches_tracked.data + 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.data)
        # Batch statistics in training, or whenever there are no running estimates to use.
        use_batch_stats = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return F.batch_norm(x, self.running_mean if track else None, self.running_var if track else None,
                            self.weight, self.bias, use_batch_stats, factor, self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class ReLU(Module):
    """y = max(x, 0). `inplace` is accepted for PyTorch compatibility; the result is a new tensor."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return F.relu(x)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class MaxPool2d(Module):
    """y[n, c, i, j] = max of x over the window at (i * stride - padding, j * stride - padding)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        if return_indices:
            raise ValueError("MaxPool2d: return_indices=True is not supported")
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding, self.dilation, self.ceil_mode = padding, dilation, ceil_mode

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AdaptiveAvgPool2d(Module):
    """(N, C, H, W) -> (N, C, S, S): the mean over each of S x S bins (bins may overlap)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(Module):
    """(N, C, H, W) -> (N, C, S, S): the maximum over each of S x S bins."""

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        if return_indices:
            raise ValueError("AdaptiveMaxPool2d: return_indices=True is not supported")
        self.output_size = output_size

    def forward(self, x):
        return F.adaptive_max_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class Dropout2d(Module):
    """In training, zero whole channels with probability p and scale the rest by 1 / (1 - p)."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout2d: p must be a number between 0 and 1; got {p!r}")
        self.p, self.inplace = float(p), inplace

    def forward(self, x):
        return F.dropout2d(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class CrossEntropyLoss(Module):
    """loss = cross_entropy(logits, target, weight, ignore_index, reduction, label_smoothing), as torch's.

    weight: optional per-class weights (K,), kept as a buffer (it moves with .to() and is saved).
    ignore_index defaults to 255, PSPNet's label for 'no class' (torch's default is -100).
    """

    def __init__(self, weight=None, ignore_index=255, reduction="mean", label_smoothing=0.0):
        super().__init__()
        self.register_buffer("weight", None if weight is None else Tensor(weight))
        self.ignore_index, self.reduction, self.label_smoothing = ignore_index, reduction, label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, self.weight, self.ignore_index, self.reduction, self.label_smoothing)

    def extra_repr(self):
        text = f"ignore_index={self.ignore_index}, reduction={self.reduction!r}"
        return text + (f", label_smoothing={self.label_smoothing}" if self.label_smoothing else "")


class Identity(Module):
    """y = x (a placeholder, e.g. where a layer is switched off)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x
