"""Reference solutions of chapter 05's exercises (bilinear upsampling)."""

import math

import numpy as np


def _source(dst, in_size, out_size, align_corners):
    """(i0, i1, lam) of output index dst along one axis."""
    if align_corners:
        src = dst * (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    else:
        src = max((dst + 0.5) * in_size / out_size - 0.5, 0.0)  # clamped on the left
    i0 = min(math.floor(src), in_size - 1)
    i1 = min(i0 + 1, in_size - 1)  # clamped on the right
    return i0, i1, src - i0


def bilinear_taps(in_hw, out_hw, oh, ow, align_corners):
    """5.1: the four ((h, w), weight) pairs output pixel (oh, ow) reads."""
    h0, h1, lh = _source(oh, in_hw[0], out_hw[0], align_corners)
    w0, w1, lw = _source(ow, in_hw[1], out_hw[1], align_corners)
    return [((h0, w0), (1 - lh) * (1 - lw)), ((h0, w1), (1 - lh) * lw),
            ((h1, w0), lh * (1 - lw)), ((h1, w1), lh * lw)]


def writers_per_axis(in_size, out_size, align_corners):
    """5.2: for each input index, the number of output indices that give it a non-zero weight."""
    counts = np.zeros(in_size, dtype=np.int64)
    for dst in range(out_size):
        i0, i1, lam = _source(dst, in_size, out_size, align_corners)
        weights = {i0: 1.0} if i1 == i0 else {i0: 1 - lam, i1: lam}  # i0 == i1 (clamped): one pixel
        for index, weight in weights.items():
            if weight > 1e-9:  # a zero-weight add changes nothing: not a writer (1e-9: round-off in src)
                counts[index] += 1
    return counts
