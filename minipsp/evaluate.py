"""Evaluate a segmentation model the way hszhao/semseg's test tool does.

Three modes, each turning one image into class probabilities (K, H, W) before the argmax:

- "whole":      the image in one forward pass (padded at the bottom and right to a size the network
                takes, (H - 1) % 8 == 0, and the padding cropped off again).
- "slide":      windows of crop x crop with stride ceil(crop * 2/3); an image smaller than the crop is
                padded (with the mean, i.e. 0 after normalisation); per axis ceil((H - crop) / stride)
                + 1 windows, the last one snapped to the edge; probabilities averaged where windows
                overlap.
- "multiscale": for each scale s (0.5, 0.75, ..., 1.75) the image is resized so its long side is
                round(s * base_size), slid over as above, its probabilities resized back, and the
                scales averaged.

With flip=True every forward pass also sees the mirrored image, and the mirrored probabilities are
mirrored back and averaged in (semseg always does this, so its "single scale" numbers include it).

Images are expected normalised, (3, H, W) float32, as the datasets' transforms give them; labels are
(H, W) int64 with 255 ignored. Resizing a normalised image equals normalising a resized one (both
are linear), and padding with 0 equals padding with the mean before normalisation.
"""

from __future__ import annotations

import math

import numpy as np

import minipsp
import minipsp.nn.functional as F
from minipsp.backend import get_array_module, to_numpy
from minipsp.metrics import SegmentationMetrics

MODES = ("whole", "slide", "multiscale")
MULTI_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


def _softmax(logits, axis):
    xp = get_array_module(logits)
    e = xp.exp(logits - logits.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _resize(array, size, align_corners=False):
    """Bilinear resize of a (C, H, W) array to `size` = (h, w), through F.interpolate.

    align_corners=False matches cv2.resize's INTER_LINEAR, which semseg uses between scales."""
    if tuple(array.shape[-2:]) == tuple(size):
        return array
    x = minipsp.Tensor(array[None])
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=align_corners).data[0]


def net_process(model, image, flip=False):
    """Class probabilities (K, H, W) of one image (3, H, W) whose size the network takes."""
    batch = image[None]
    if flip:
        xp = get_array_module(image)
        batch = xp.concatenate([batch, batch[..., ::-1]], axis=0)
    with minipsp.no_grad():
        logits = model(minipsp.Tensor(get_array_module(batch).ascontiguousarray(batch))).data
    if logits.shape[-2:] != image.shape[-2:]:     # zoom_factor < 8: upsample to the input
        logits = F.interpolate(minipsp.Tensor(logits), size=image.shape[-2:], mode="bilinear",
                               align_corners=True).data
    probs = _softmax(logits, axis=1)
    if flip:
        return (probs[0] + probs[1][..., ::-1]) / 2
    return probs[0]


def _valid_size(n, stride=8):
    """The smallest m >= n with (m - 1) % stride == 0 (what a stride-8 network with zoom 8 takes)."""
    return n + (-(n - 1)) % stride


def whole_process(model, image, flip=False):
    """Pad (3, H, W) at the bottom and right to a valid size, run once, crop back to (K, H, W)."""
    xp = get_array_module(image)
    _, H, W = image.shape
    h, w = _valid_size(H), _valid_size(W)
    padded = xp.zeros((3, h, w), dtype=image.dtype)
    padded[:, :H, :W] = image
    return net_process(model, padded, flip)[:, :H, :W]


def window_starts(size, crop, stride):
    """Start offsets of the windows along one axis: every `stride`, the last one snapped to the edge."""
    count = int(math.ceil(max(size - crop, 0) / stride)) + 1
    return [min(i * stride, size - crop) for i in range(count)]


def _n(count: int) -> str:
    """A pixel count as text: 3 digits past a billion (a scale of 1e300 gives a 300-digit side)."""
    return f"{count}" if count < 10**9 else f"{float(min(count, 10**307)):.3g}"


def _check_fits(image, num_classes, height, width, advice):
    """Refuse, as one ConfigError, arrays of height x width that cannot fit: --crop-size 100001 or a base_size
    of 10**8 were a MemoryError (or the OOM killer) deep inside. A lower bound: the padded image, the
    probabilities and the window counts, float32."""
    from minipsp import memory
    from minipsp.backend import device_of
    from minipsp.config import ConfigError

    needed = 4 * (3 + num_classes + 1) * height * width
    device = device_of(image)
    available = memory.available_bytes(device)
    if available is not None and needed > available:
        raise ConfigError(f"evaluating a {image.shape[1]} x {image.shape[2]} image over {_n(height)} x {_n(width)} "
                          f"pixels ({num_classes} classes) needs at least {memory.human(needed)}, but {device} has "
                          f"{memory.human(available)} available; {advice}")


def slide_process(model, image, num_classes, crop, stride_rate=2 / 3, flip=False, advice=None):
    """Sliding-window probabilities (K, H, W) of an image (3, H, W)."""
    xp = get_array_module(image)
    _, H, W = image.shape
    pad_h, pad_w = max(crop - H, 0), max(crop - W, 0)
    _check_fits(image, num_classes, H + pad_h, W + pad_w, advice or f"lower --crop-size (got {crop})")
    top, left = pad_h // 2, pad_w // 2                 # semseg pads both sides, half each
    padded = xp.zeros((3, H + pad_h, W + pad_w), dtype=image.dtype)
    padded[:, top:top + H, left:left + W] = image
    stride = int(math.ceil(crop * stride_rate))
    probs = xp.zeros((num_classes,) + padded.shape[1:], dtype=np.float32)
    count = xp.zeros(padded.shape[1:], dtype=np.float32)
    for y in window_starts(padded.shape[1], crop, stride):
        for x in window_starts(padded.shape[2], crop, stride):
            probs[:, y:y + crop, x:x + crop] += net_process(model, padded[:, y:y + crop, x:x + crop], flip)
            count[y:y + crop, x:x + crop] += 1
    probs /= count
    return probs[:, top:top + H, left:left + W]


def multiscale_process(model, image, num_classes, crop, scales=MULTI_SCALES, base_size=0, flip=True,
                       stride_rate=2 / 3):
    """Average over scales of the sliding-window probabilities, each resized back to (K, H, W)."""
    _, H, W = image.shape
    base = base_size or max(H, W)
    total = 0
    for scale in scales:
        long_side = round(scale * base)
        if H > W:
            size = (long_side, round(long_side / H * W))
        else:
            size = (round(long_side / W * H), long_side)
        size = (max(1, size[0]), max(1, size[1]))     # a 1-pixel side at scale 0.5 would round to 0
        advice = (f"lower base_size (got {base_size}; 0: the image's own)" if base_size else "lower eval_scales") + \
            f" or --crop-size (got {crop}): scale {scale:g} makes the long side {_n(long_side)}"
        _check_fits(image, num_classes, max(size[0], crop), max(size[1], crop), advice)
        scaled = _resize(image, size)
        probs = slide_process(model, scaled, num_classes, crop, stride_rate, flip, advice)
        total = total + _resize(probs, (H, W))
    return total / len(scales)


def predict_probs(model, image, num_classes, mode="whole", crop_size=473, scales=MULTI_SCALES,
                  base_size=0, flip=None):
    """Class probabilities (K, H, W) of one normalised image (3, H, W), by `mode`."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if crop_size < 9 or (crop_size - 1) % 8:
        raise ValueError(f"crop_size must satisfy (crop_size - 1) % 8 == 0; got {crop_size}")
    if mode == "whole":
        return whole_process(model, image, bool(flip))
    if mode == "slide":
        return slide_process(model, image, num_classes, crop_size, flip=bool(flip))
    return multiscale_process(model, image, num_classes, crop_size, scales, base_size,
                              flip=True if flip is None else flip)


def _as_numpy(a):
    return a.numpy() if isinstance(a, minipsp.Tensor) else np.asarray(a)


def _model_device(model):
    for p in model.parameters():
        return p.device
    return "cpu"


def evaluate(model, dataset, num_classes, mode="whole", crop_size=473, scales=MULTI_SCALES, base_size=0,
             flip=None, ignore_index=255, count=0, progress=True):
    """Run `model` over `dataset` (pairs of normalised image (3, H, W), label (H, W)) and score it.

    Returns SegmentationMetrics' dict: pixel_acc, mean_acc, iou (per class), miou. `count` > 0 uses
    only the first `count` images. The model is put in eval mode and restored afterwards.
    Under mpiexec (minipsp.distributed initialised), rank r of R takes images r, r + R, ... and the
    confusion matrices are summed over ranks: every rank returns the single-process result, exactly.
    """
    from tqdm import tqdm

    from minipsp import distributed

    rank, world = distributed.rank_and_world()
    device = _model_device(model)
    metrics = SegmentationMetrics(num_classes, ignore_index=ignore_index)
    n = len(dataset) if count <= 0 else min(count, len(dataset))
    was_training = model.training
    model.eval()
    try:
        bar = tqdm(range(rank, n, world), desc=f"eval {mode}", disable=not progress or rank != 0, leave=False)
        for i in bar:
            image, label = dataset[i]
            image = minipsp.Tensor(_as_numpy(image).astype(np.float32)).to(device).data
            probs = predict_probs(model, image, num_classes, mode, crop_size, scales, base_size, flip)
            pred = to_numpy(probs.argmax(axis=0))
            metrics.update(pred, _as_numpy(label))
            if (i + 1) % 5 == 0 or i + 1 == n:
                bar.set_postfix(miou=f"{metrics.compute()['miou']:.3f}")
    finally:
        model.train(was_training)
    if world > 1:
        distributed.all_reduce(metrics.confusion)      # int64 counts: the sum is exact
    return metrics.compute()
