"""Chapter 07 (ResNet and dilation): the checks of its exercises.

7.1 conv_output_size(size, kernel_size, stride, padding, dilation): the side of a convolution's output.
7.2 receptive_field(layers): the theoretical receptive field of a stack of (kernel_size, stride, dilation)
    layers, checked against the field measured by autograd on the same stack built from nn.Conv2d.
"""

from __future__ import annotations

import numpy as np

from minipsp.course import Mismatch, exercise, expect_equal

# (size, kernel_size, stride, padding, dilation): PSPNet's stem on 473 and 129, odd sizes, dilated taps
OUTPUT_SIZE_CASES = [(473, 3, 2, 1, 1), (237, 3, 2, 1, 1), (60, 3, 1, 2, 2), (60, 3, 1, 4, 4), (129, 7, 2, 3, 1),
                     (33, 3, 2, 0, 1), (20, 3, 1, 0, 3), (16, 5, 3, 1, 2), (9, 1, 2, 0, 1), (64, 3, 2, 1, 1),
                     (50, 3, 2, 0, 2)]

# stacks of (kernel_size, stride, dilation); the last is minipsp.models.shallow's backbone (115 pixels)
RF_STACKS = [
    [(3, 1, 1)] * 3,
    [(3, 2, 1), (3, 1, 1)],
    [(7, 2, 1), (3, 2, 1), (3, 1, 2)],
    [(3, 1, 2), (3, 1, 2), (3, 1, 2)],
    [(3, 2, 1), (3, 2, 1), (3, 1, 2), (3, 1, 4)],
    [(3, 2, 1), (3, 1, 1), (3, 2, 1), (3, 2, 1), (3, 1, 2), (3, 1, 4)],
]


@exercise("7.1", "the output size of a convolution", solution="conv_output_size",
          hint="a dilated kernel spans dilation * (kernel_size - 1) + 1 pixels; the output has "
               "floor((size + 2 * padding - span) / stride) + 1 positions")
def check_conv_output_size(conv_output_size):
    import minipsp
    import minipsp.nn.functional as F

    for size, k, s, p, d in OUTPUT_SIZE_CASES:
        x = minipsp.zeros(1, 1, size, 1)                             # one column is enough to see the height
        weight = minipsp.zeros(1, 1, k, 1)
        expected = F.conv2d(x, weight, stride=(s, 1), padding=(p, 0), dilation=(d, 1)).shape[2]
        got = conv_output_size(size, k, s, p, d)
        expect_equal(f"conv_output_size(size={size}, kernel_size={k}, stride={s}, padding={p}, dilation={d}) "
                     f"(F.conv2d's output height)", got, expected)
    return (f"equals F.conv2d's output size on {len(OUTPUT_SIZE_CASES)} cases (473 -> 237 in PSPNet's stem; "
            "dilation 2 and 4 with padding = dilation keep 60)")


def measured_receptive_field(layers, size=161):
    """Rows of the input on which the centre output pixel of the stack depends (autograd, float64)."""
    import minipsp
    import minipsp.nn as nn

    convs = []
    for k, s, d in layers:
        conv = nn.Conv2d(1, 1, k, stride=s, padding=d * (k - 1) // 2, dilation=d, bias=False).double()
        nn.init.ones_(conv.weight)
        convs.append(conv)
    net = nn.Sequential(*convs)
    x = minipsp.tensor(np.ones((1, 1, size, size)), requires_grad=True)
    y = net(x)
    c = y.shape[2] // 2
    y[0, 0, c, c].backward()
    g = np.abs(x.grad[0, 0]).sum(1)                                   # positive weights: nothing cancels
    rows = np.nonzero(g > 1e-9 * g.max())[0]          # (a fast convolution may leave ~1e-16 noise, not zeros)
    if rows.min() == 0 or rows.max() == size - 1:
        raise RuntimeError(f"the test image ({size} px) is too small for the stack {layers}")
    return int(rows.max() - rows.min() + 1)


@exercise("7.2", "the receptive field of a dilated stack", solution="receptive_field",
          hint="keep two numbers: rf (start 1) and jump (start 1, the input distance between neighbouring pixels "
               "of the current map); each layer does rf += dilation * (kernel_size - 1) * jump, THEN jump *= stride")
def check_receptive_field(receptive_field):
    for layers in RF_STACKS:
        expected = measured_receptive_field(layers)
        got = receptive_field(list(layers))
        if not isinstance(got, (int, np.integer)):
            raise Mismatch(f"receptive_field({layers}) should return an int (pixels); got {got!r}")
        expect_equal(f"receptive_field({layers}) (measured by autograd: the gradient of the centre output pixel is "
                     "non-zero on this many input rows)", int(got), expected)
    return f"equals the receptive field measured by autograd on {len(RF_STACKS)} stacks, up to the 115-pixel shallow " \
           "backbone of chapter 08"
