"""The pyramid pooling module (Zhao et al. 2017, section 3.2 and Figure 3).

For each bin size b in `bins`, the feature map is pooled to b x b cells, reduced to
`reduction_dim` channels by a 1x1 conv + BN + ReLU, and upsampled back (bilinear,
align_corners=True). The input and the upsampled maps are concatenated along the channels:

    x (N, C, H, W) -> cat[x, up(f_1(pool_1(x))), ..., up(f_k(pool_k(x)))]   (N, C + k * R, H, W)

With b = 1 a cell sees the whole image (global context); b = 6 gives 36 sub-region summaries.
The paper's "DR" (dimension reduction) is R = C / k, so the pyramid adds as many channels as x
has: 2048 + 4 * 512 = 4096 for ResNet-50 with bins (1, 2, 3, 6).

Keys: `features.{i}.1.weight` (the conv, no bias) and `features.{i}.2.*` (the BN), as in semseg;
index 0 is the pooling and 3 the ReLU, which have no parameters.
"""

from __future__ import annotations

import minipsp.nn as nn
import minipsp.nn.functional as F
from minipsp.tensor import cat

__all__ = ["PPM"]


class PPM(nn.Module):
    def __init__(self, in_dim, reduction_dim, bins=(1, 2, 3, 6), pooling="avg"):
        super().__init__()
        if pooling not in ("avg", "max"):
            raise ValueError(f"PPM: pooling must be 'avg' or 'max'; got {pooling!r}")
        bins = tuple(bins)
        if not bins or any(not isinstance(b, int) or b < 1 for b in bins):
            raise ValueError(f"PPM: bins must be a non-empty sequence of positive ints; got {bins!r}")
        if not isinstance(reduction_dim, int) or reduction_dim < 1:
            raise ValueError(f"PPM: reduction_dim must be a positive int; got {reduction_dim!r}")
        self.in_dim, self.reduction_dim, self.bins, self.pooling = in_dim, reduction_dim, bins, pooling
        pool = nn.AdaptiveAvgPool2d if pooling == "avg" else nn.AdaptiveMaxPool2d
        self.features = nn.ModuleList([
            nn.Sequential(pool(b), nn.Conv2d(in_dim, reduction_dim, kernel_size=1, bias=False),
                          nn.BatchNorm2d(reduction_dim), nn.ReLU(inplace=True))
            for b in bins
        ])

    @property
    def out_dim(self):
        return self.in_dim + len(self.bins) * self.reduction_dim

    def forward(self, x):
        size = x.shape[2:]
        out = [x]
        for branch in self.features:
            out.append(F.interpolate(branch(x), size, mode="bilinear", align_corners=True))  # (N, R, H, W)
        return cat(out, dim=1)  # (N, C + k * R, H, W)

    def extra_repr(self):
        return f"bins={self.bins}, pooling={self.pooling!r}"
