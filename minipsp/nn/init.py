"""Weight initialisation, in place, with torch.nn.init's names and formulas.

    fan_in  = in_channels  * KH * KW      (what one output sums over)
    fan_out = out_channels * KH * KW
    gain    = calculate_gain(nonlinearity, a)      e.g. sqrt(2) for ReLU
    kaiming_normal_:  w ~ N(0, std^2),      std   = gain / sqrt(fan)
    kaiming_uniform_: w ~ U(-bound, bound), bound = gain * sqrt(3 / fan)
    xavier_uniform_:  w ~ U(-bound, bound), bound = gain * sqrt(6 / (fan_in + fan_out))

PyTorch's default for Conv2d is kaiming_uniform_(w, a=sqrt(5)), which works out to
bound = 1 / sqrt(fan_in), and the bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).  Ref: He et al. 2015.

The numbers always come from minipsp's CPU generator (`minipsp.manual_seed`) and are then copied
to the tensor's device, so the same seed gives the same weights on the CPU and on a GPU.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from minipsp.backend import to_device
from minipsp.random import get_rng

__all__ = [
    "calculate_gain", "constant_", "kaiming_normal_", "kaiming_uniform_", "normal_", "ones_", "uniform_",
    "xavier_normal_", "xavier_uniform_", "zeros_",
]


def calculate_gain(nonlinearity, param=None):
    """The factor that keeps activations' variance steady through `nonlinearity` (torch's table)."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is not None and (isinstance(param, bool) or not isinstance(param, numbers.Real)
                                  or not math.isfinite(param)):
            raise ValueError(f"calculate_gain: the negative slope (a, param) must be a finite number; got {param!r}")
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; "
                     "expected linear, conv2d, sigmoid, tanh, relu or leaky_relu")


def _fans(tensor):
    if tensor.ndim < 2:
        raise ValueError(f"fan in and fan out need a tensor with at least 2 dimensions; got shape {tensor.shape}")
    receptive_field = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


def _fill(tensor, values):
    """Write CPU-generated `values` into `tensor` on its own device and dtype."""
    tensor.data = to_device(np.asarray(values, dtype=tensor.dtype).reshape(tensor.shape), tensor.device)
    return tensor


def _finite(value, name, where):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{where}: {name} must be a finite number; got {value!r}")


def uniform_(tensor, a=0.0, b=1.0):
    _finite(a, "a", "uniform_")
    _finite(b, "b", "uniform_")
    if a > b:       # NumPy's "high - low < 0"
        raise ValueError(f"uniform_: the range [a, b) needs a <= b; got a={a!r}, b={b!r}")
    return _fill(tensor, get_rng().uniform(a, b, size=tensor.shape))


def normal_(tensor, mean=0.0, std=1.0):
    _finite(mean, "mean", "normal_")
    _finite(std, "std", "normal_")
    if std < 0:     # NumPy's "scale < 0"
        raise ValueError(f"normal_: std must be >= 0; got {std!r}")
    return _fill(tensor, get_rng().normal(mean, std, size=tensor.shape))


def constant_(tensor, val):
    return _fill(tensor, np.full(tensor.shape, val))


def ones_(tensor):
    return constant_(tensor, 1.0)


def zeros_(tensor):
    return constant_(tensor, 0.0)


def _fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out'; got {mode!r}")
    fan_in, fan_out = _fans(tensor)
    return fan_in if mode == "fan_in" else fan_out


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(tensor, mode))
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std)


def xavier_uniform_(tensor, gain=1.0):
    fan_in, fan_out = _fans(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor, gain=1.0):
    fan_in, fan_out = _fans(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def fan_in(tensor):
    """in_channels * KH * KW of a weight (what the default bias bound 1/sqrt(fan_in) uses)."""
    return _fans(tensor)[0]
