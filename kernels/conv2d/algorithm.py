"""Which algorithm the cpu variant runs for a convolution: im2col + GEMM, or Winograd F(2x2) / F(4x4).

Winograd applies to 3x3 kernels with stride 1 (any padding, any dilation: space_to_batch.py turns
a dilated convolution into undilated ones on the phase sub-images, of side OH / dilation). It pays
when the transforms, which cost per pixel and channel, are small next to the GEMM that they
shrink (4x fewer multiplications for F(4x4), 2.25x for F(2x2)), i.e. with enough channels, and
when the tiles fit the phase images: an m x m tile on a 5 x 5 phase computes 8 x 8 outputs for 25.

CROSSOVERS is the table, measured with benchmarks/conv_crossover.py on PSPNet's layer shapes
(benchmarks/README.md, "Convolution algorithms"): the first row whose minimums a convolution meets
gives its algorithm, and a convolution that meets none (or is not 3x3 stride 1) runs im2col.

The environment variable MINIPSP_CONV overrides the table, for tests and teaching:
    auto       the table (the default)
    im2col     im2col + GEMM everywhere
    winograd   Winograd F(4x4, 3x3) for every 3x3 stride-1 convolution (also winograd4)
    winograd2  Winograd F(2x2, 3x3) for every 3x3 stride-1 convolution
It is read at every call, so a test can set it for one block of code.
"""

import os

CHOICES = ("auto", "im2col", "winograd", "winograd2", "winograd4")

# (smallest of C_in and C_out, smallest phase side min(OH/dh, OW/dw), forward/dx algorithm, dw algorithm)
CROSSOVERS = [
]


def forced():
    """MINIPSP_CONV's value ('auto' when unset), checked."""
    value = os.environ.get("MINIPSP_CONV", "auto")
    if value not in CHOICES:
        raise ValueError(f"MINIPSP_CONV must be one of {CHOICES}; got {value!r}")
    return value


def winograd_applies(weight_shape, stride):
    return tuple(weight_shape[2:]) == (3, 3) and tuple(stride) == (1, 1)


def choose(x_shape, weight_shape, stride, padding, dilation):
    """(algorithm for forward and dx, algorithm for dw): each 'im2col', 'winograd2' or 'winograd4'."""
    value = forced()
    if value == "im2col" or not winograd_applies(weight_shape, stride):
        return "im2col", "im2col"
    if value != "auto":
        algorithm = "winograd4" if value == "winograd" else value
        return algorithm, algorithm
    channels = min(x_shape[1], weight_shape[0])
    OH = x_shape[2] + 2 * padding[0] - 2 * dilation[0]
    OW = x_shape[3] + 2 * padding[1] - 2 * dilation[1]
    phase_side = min(OH // dilation[0], OW // dilation[1])
    for min_channels, min_side, forward, weight_grad in CROSSOVERS:
        if channels >= min_channels and phase_side >= min_side:
            return forward, weight_grad
    return "im2col", "im2col"


def tile_size(algorithm):
    """m of F(m x m, 3x3) for 'winograd2' / 'winograd4'."""
    return int(algorithm[-1])
