"""Which algorithm the cpu variant runs for a convolution: im2col + GEMM, or Winograd F(2x2) / F(4x4).

Winograd applies to 3x3 kernels with stride 1 (any padding, any dilation: space_to_batch.py turns
a dilated convolution into undilated ones on the phase sub-images, of side OH / dilation). It pays
when the transforms, which cost per pixel and channel, are small next to the GEMM that they
shrink (4x fewer multiplications for F(4x4), 2.25x for F(2x2)), i.e. with enough channels, and
when the tiles fit the phase images: an m x m tile on a 5 x 5 phase computes 8 x 8 outputs for 25.

CROSSOVERS is the table, measured with `python -m benchmarks.conv_crossover` on PSPNet's layer shapes
(benchmarks/README.md, "Convolution algorithms"). A row is (smallest min(C_in, C_out), largest
waste, largest transformed filter per tile, algorithm for forward and dx, algorithm for dw), and the
first row a convolution meets gives its algorithm; one that meets none (or is not 3x3 stride 1) runs
im2col. The filter per tile (F4_MAX_FILTER_PER_TILE) keeps F(4x4) off many channels at small batches:
its U is 2.25x F(2x2)'s and is written and read once per call. The waste is what F(4x4)
computes for nothing: the outputs of its tiles over all phases divided by OH*OW (1.38 at 17 x 17,
1.78 at 9 x 9; 3.2 at 9 x 9 with dilation 4, where each 2 x 2 phase takes a whole 4 x 4 tile).
Measured (single-thread CPU time, batch 8, forward + dx + dw, im2col / F(2x2) / F(4x4) in ms;
2026-12-02, F(4x4) with the points 0, +-3/2, +-2/3): F(4x4) is fastest from 8 channels up wherever
its waste is at most 1.38 (65 px, 64 channels: 147 / 117 / 71; 17 px with dilation 4, 512 channels:
365 / 260 / 186; 17 px, 1024 -> 512: 673 / 398 / 332), F(2x2) where it is 1.78 or more (9 px, 1024
-> 512: 227 / 159 / 251; 9 px dilation 4: 109 / 92 / 158), and im2col nowhere among these.
Below 8 channels nothing was measured, so im2col stays.

    the table's choice, batch 8          129 px crop (train step)        65 px crop
    stem conv2, conv3 (64 ch)            F(4x4)  (65 px, waste 1.09)     F(4x4) (33 px)
    layer1 (64), layer2 (128)            F(4x4)  (33, 17 px)             F(4x4) (17 px), F(2x2) (9 px)
    layer3 d2, aux head (256)            F(4x4)  (17 px, waste 1.38)     F(2x2) (9 px, waste 1.78 / 3.2)
    layer4 d4 (512), cls head (1024)     F(2x2)  (47 K, 94 K of U a tile)
    at batch 2 (PSPNet-50's benchmark)   F(4x4) up to 128 channels, F(2x2) from 256
    fewer than 512 outputs per call      im2col (make demo's 7 x 7 maps, one 65 px image's 9 x 9)
    1x1, stride 2, 3 input channels      im2col

Small maps keep im2col: MIN_OUTPUTS is the fewest output pixels per call, N*OH*OW, for Winograd.
The filter transform (and dw's adjoint of it) costs C_in*C_out per call whatever the map, and on a
few hundred pixels it is not paid back. Measured the same way on `make demo`'s shapes (training:
batch 8 of 49 px crops, so 25, 13 and 7 px maps; evaluation: one 65 px image, 33, 17 and 9 px):
1 x 9 x 9 = 81 outputs, im2col / F(2x2) / F(4x4) ms: 512 channels dilation 4 18.1 / 31.6 / 58.2,
1024 -> 512 36.2 / 60.9 / 97.5; 2 x 9 x 9 = 162: 29.1 / 42.7 / 59.0; 8 x 7 x 7 = 392: even
(73.7 / 78.9 / 203 at 512 channels dilation 4, 155 / 142 / 157 at 1024 -> 512); 8 x 9 x 9 = 648:
F(2x2) 1.2-1.4x faster than im2col (the 65 px rows above).

The default ('auto') takes F(4x4) where it is fastest. Until 2026-12-02 it took F(2x2) everywhere, for
accuracy: with Lavin & Gray's points 0, +-1, +-2 F(4x4)'s float32 error was ~10x a direct
convolution's per layer and PSPNet-18's float32 gradients missed the torch parity check (6e-4 from
float64 in relative L2, 2e-4 allowed). With the points 0, +-3/2, +-2/3 (winograd.py) it is ~4x a
direct convolution's per layer (winograd.ERROR_BOUND: 1e-5 of the output's scale) and 5.6e-5 on the
parity check (torch 2.8e-5). 'fast' is now the same table (kept as a name for scripts).

The environment variable MINIPSP_CONV overrides the table, for tests and teaching:
    auto       the table: F(4x4) or F(2x2) where Winograd pays, else im2col (the default)
    fast       the same as auto
    im2col     im2col + GEMM everywhere
    winograd   Winograd F(4x4, 3x3) for every 3x3 stride-1 convolution (also winograd4)
    winograd2  Winograd F(2x2, 3x3) for every 3x3 stride-1 convolution
It is read at every call, so a test can set it for one block of code.
"""

import functools
import os

from . import space_to_batch

# Fewest output pixels per call (N*OH*OW) for Winograd under auto / fast (392 measured even, 648 faster)
MIN_OUTPUTS = 512

CHOICES = ("auto", "fast", "im2col", "winograd", "winograd2", "winograd4")

# Largest transformed filter of F(4x4) per tile of the call, in elements: 36 * C_out * C_in / (N * tiles).
# U is written once per call (forward and dx each transform the weight; dw writes dU and transforms it
# back) and each of its 36 planes is read by a GEMM only as many columns wide as there are tiles, so
# with many channels and few tiles F(4x4) is bound by moving U (2.25x F(2x2)'s), not by the products
# it saves. Measured 2026-12-02 (conv_crossover, 2 cores, wall time of fwd + dx + dw, ms, F(2x2) /
# F(4x4)) on 17 px maps (25 F(4x4) tiles an image), by elements of U per tile: 128 -> 128 at batch 2
# (12 K) 6.3 / 5.9; 256 -> 256 d2 at batch 4 (24 K) 37.0 / 23.6, at batch 2 (47 K) 12.8 / 16.3;
# 512 -> 512 d4 at batch 8 (47 K) 132 / 125, batch 4 (94 K) 66 / 94, batch 2 (189 K) 39 / 57;
# 1024 -> 512 at batch 8 (94 K) 200 / 228, batch 2 (377 K) 69 / 111.
F4_MAX_FILTER_PER_TILE = 32 * 1024

# (smallest min(C_in, C_out), largest waste of F(4x4), largest filter per tile, forward and dx, dw)
# F(4x4) where its tiles fit and enough tiles share its filter, F(2x2) elsewhere; float32 errors
# in winograd.ERROR_BOUND
TABLE = [(8, 1.5, F4_MAX_FILTER_PER_TILE, "winograd4", "winograd4"),
         (8, float("inf"), float("inf"), "winograd2", "winograd2")]
CROSSOVERS = {"auto": TABLE, "fast": TABLE}


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
    if value not in CROSSOVERS:
        algorithm = "winograd4" if value == "winograd" else value
        return algorithm, algorithm
    channels = min(x_shape[1], weight_shape[0])
    OH, OW = (size + 2 * p - 2 * d for size, p, d in zip(x_shape[2:], padding, dilation))
    if x_shape[0] * OH * OW < MIN_OUTPUTS:
        return "im2col", "im2col"
    waste = waste_of_f4(*x_shape[2:], tuple(padding), tuple(dilation))
    tiles = x_shape[0] * tiles_of_f4(*x_shape[2:], tuple(padding), tuple(dilation))
    filter_per_tile = 36 * weight_shape[0] * x_shape[1] / max(1, tiles)
    for min_channels, max_waste, max_filter_per_tile, forward, weight_grad in CROSSOVERS[value]:
        if channels >= min_channels and waste <= max_waste and filter_per_tile <= max_filter_per_tile:
            return forward, weight_grad
    return "im2col", "im2col"


@functools.lru_cache(maxsize=1024)
def tiles_of_f4(H, W, padding, dilation):
    """F(4x4)'s tiles over all phases of one image (0 for an empty output)."""
    OH, OW = (size + 2 * p - 2 * d for size, p, d in zip((H, W), padding, dilation))
    if OH <= 0 or OW <= 0:
        return 0
    return space_to_batch.phase_table(H, W, OH, OW, padding, dilation, 4)[1]


def waste_of_f4(H, W, padding, dilation):
    """Outputs that F(4x4)'s tiles compute over all phases, divided by OH*OW (>= 1)."""
    OH, OW = (size + 2 * p - 2 * d for size, p, d in zip((H, W), padding, dilation))
    if OH <= 0 or OW <= 0:
        return float("inf")
    return 16 * tiles_of_f4(H, W, padding, dilation) / (OH * OW)


def tile_size(algorithm):
    """m of F(m x m, 3x3) for 'winograd2' / 'winograd4'."""
    return int(algorithm[-1])
