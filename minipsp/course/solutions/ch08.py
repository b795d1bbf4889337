"""Reference solutions of chapter 08's exercises (PSPNet)."""

import numpy as np

import minipsp
import minipsp.nn.functional as F


def ppm_forward(x, branches, bins):
    """8.1: cat[x, up(relu(bn(conv1x1(pool_b(x))))) for each bin b]: (N, C, H, W) -> (N, C + k R, H, W)."""
    size = x.shape[2:]
    out = [x]
    for b, w in zip(bins, branches):
        y = F.adaptive_avg_pool2d(x, b)                                  # (N, C, b, b)
        y = F.conv2d(y, minipsp.tensor(w["conv_weight"]))                # (N, R, b, b): 1x1, no bias
        y = F.batch_norm(y, w["running_mean"], w["running_var"], minipsp.tensor(w["bn_weight"]),
                         minipsp.tensor(w["bn_bias"]), training=False)
        y = F.relu(y)
        out.append(F.interpolate(y, size=size, mode="bilinear", align_corners=True))  # (N, R, H, W)
    return minipsp.cat(out, dim=1)


def landing_rows(bins, size):
    """8.2: the output rows where the values of cells 0..bins-1 land, upsampling bins -> size, align_corners=True."""
    return np.arange(bins) * (size - 1) / (bins - 1)
