"""Convolution cases: the convolutions PSPNet spends its time in.

- 3x3 dilation 2 (padding 2), 8x64x64x64 -> 64: the shape of a dilated ResNet layer3 conv2, scaled
  down to a laptop; no bias, as every conv followed by batch norm.
- 1x1, 8x256x64x64 -> 64: a bottleneck's conv1 (the most common conv in the network), with bias.
- 3x3 stride 2 (padding 1), 8x64x64x64 -> 128: a downsampling conv of the stem and layer2.
Each case runs forward + backward (gradients of input, weight and bias) on the same float32
input, weights and output gradient in minipsp and in torch, and returns the forward output.
"""

from __future__ import annotations

import numpy as np

import minipsp
import minipsp.nn.functional as F
from benchmarks.common import Case


def _case(name, x_shape, weight_shape, with_bias, conv_args, device):
    import torch
    import torch.nn.functional as TF

    rng = np.random.default_rng(0)
    values = [rng.standard_normal(x_shape).astype(np.float32),
              (rng.standard_normal(weight_shape) / np.sqrt(np.prod(weight_shape[1:]))).astype(np.float32)]
    if with_bias:
        values.append(rng.standard_normal(weight_shape[0]).astype(np.float32))
    out_shape = tuple(TF.conv2d(*(torch.tensor(v) for v in values), **conv_args).shape)
    dy = rng.standard_normal(out_shape).astype(np.float32)
    ours = [minipsp.tensor(v, requires_grad=True, device=device) for v in values]
    theirs = [torch.tensor(v, requires_grad=True, device=device) for v in values]
    dy_ours, dy_theirs = minipsp.tensor(dy, device=device), torch.tensor(dy, device=device)

    def run_minipsp():
        for t in ours:
            t.grad = None
        y = F.conv2d(*ours, **conv_args)
        y.backward(dy_ours)
        return y.numpy()

    def run_torch():
        for t in theirs:
            t.grad = None
        y = TF.conv2d(*theirs, **conv_args)
        y.backward(dy_theirs)
        return y.detach().cpu().numpy()

    shape = f"{'x'.join(map(str, x_shape))} -> {weight_shape[0]}"
    return Case(name, shape, run_minipsp, run_torch)


def cases(device="cpu"):
    return [
        _case("conv2d 3x3 dilation 2", (8, 64, 64, 64), (64, 64, 3, 3), False,
              dict(padding=2, dilation=2), device),
        _case("conv2d 1x1 + bias", (8, 256, 64, 64), (64, 256, 1, 1), True, {}, device),
        _case("conv2d 3x3 stride 2", (8, 64, 64, 64), (128, 64, 3, 3), False,
              dict(stride=2, padding=1), device),
    ]
