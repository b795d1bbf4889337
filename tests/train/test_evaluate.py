"""Evaluation modes: window placement, averaging, flipping and resizing back, on models whose answer is known.

An "oracle" model reads the class off the image (channel 0 holds the label as a number) pixel by pixel,
so every mode must score mIoU 1 on it: a window placed one pixel wrong, a flip not undone or a
resize not inverted would show up as lost pixels. A tiny PSPNet then runs all three modes for real.
"""

import math

import numpy as np
import pytest

import minipsp
from minipsp import nn
from minipsp.evaluate import evaluate, predict_probs, slide_process, whole_process, window_starts

K = 4


class Oracle(nn.Module):
    """logits[k] = -10 (x0 - k)^2: the class is channel 0 of the image, rounded. No parameters."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x):
        self.calls.append(x.shape)
        ks = minipsp.tensor(np.arange(K, dtype=np.float32).reshape(1, K, 1, 1))
        return ((x[:, 0:1] - ks) ** 2) * -10.0


class LabelImages:
    """Images whose channel 0 is the label (blocks of classes), a few pixels ignored (255)."""

    def __init__(self, sizes, seed=0):
        rng = np.random.default_rng(seed)
        self.items = []
        for h, w in sizes:
            label = np.repeat(np.repeat(rng.integers(0, K, (h // 4 + 1, w // 4 + 1)), 4, 0), 4, 1)[:h, :w]
            image = np.stack([label, rng.normal(size=(h, w)), rng.normal(size=(h, w))]).astype(np.float32)
            label = label.astype(np.int64)
            label[0, 0] = 255
            self.items.append((image, label))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


@pytest.mark.parametrize("size, crop, stride, expected", [
    (10, 5, 4, [0, 4, 5]),          # the last window snapped to the edge
    (13, 5, 4, [0, 4, 8]),          # fits exactly
    (5, 5, 4, [0]),
    (473, 473, 316, [0]),
    (512, 473, 316, [0, 39]),       # semseg: ceil((512 - 473) / 316) + 1 = 2 windows
])
def test_window_starts(size, crop, stride, expected):
    starts = window_starts(size, crop, stride)
    assert starts == expected
    assert len(starts) == math.ceil(max(size - crop, 0) / stride) + 1
    covered = np.zeros(size, bool)
    for s in starts:
        covered[s:s + crop] = True
    assert covered.all()


def test_slide_runs_one_forward_per_window():
    model = Oracle()
    image = LabelImages([(30, 20)]).items[0][0]
    slide_process(model, image, K, crop=17, flip=False)
    stride = math.ceil(17 * 2 / 3)
    expected = len(window_starts(30, 17, stride)) * len(window_starts(20, 17, stride))
    assert len(model.calls) == expected == 3 * 2    # rows at 0, 12, 13; columns at 0, 3
    assert all(shape == (1, 3, 17, 17) for shape in model.calls)


@pytest.mark.parametrize("flip", [False, True])
def test_slide_and_whole_agree_with_the_oracle(flip):
    image, label = LabelImages([(23, 30)]).items[0]
    for probs in (whole_process(Oracle(), image, flip), slide_process(Oracle(), image, K, crop=17, flip=flip)):
        assert probs.shape == (K, 23, 30)
        np.testing.assert_allclose(probs.sum(0), 1, atol=1e-5)
        pred = probs.argmax(0)
        assert (pred[label != 255] == label[label != 255]).all()


def test_small_image_is_padded_to_the_crop():
    image, label = LabelImages([(9, 12)]).items[0]
    model = Oracle()
    probs = slide_process(model, image, K, crop=17)
    assert model.calls == [(1, 3, 17, 17)]
    assert (probs.argmax(0)[1:] == label[1:]).all()


@pytest.mark.parametrize("mode", ["whole", "slide", "multiscale"])
def test_evaluate_oracle_scores_one(mode):
    data = LabelImages([(25, 33), (40, 17)])
    scales = (1.0,) if mode == "multiscale" else ()
    result = evaluate(Oracle(), data, K, mode=mode, crop_size=17, scales=scales or (1.0,), progress=False)
    assert result["miou"] == pytest.approx(1.0)
    assert result["pixel_acc"] == pytest.approx(1.0)


def test_multiscale_resizes_back():
    # At scales other than 1 the class boundaries blur a little, but almost every pixel survives.
    data = LabelImages([(33, 41)])
    result = evaluate(Oracle(), data, K, mode="multiscale", crop_size=17, scales=(0.75, 1.0, 1.5), progress=False)
    assert result["pixel_acc"] > 0.9


def test_bad_mode_and_crop():
    image = LabelImages([(9, 9)]).items[0][0]
    with pytest.raises(ValueError, match="mode"):
        predict_probs(Oracle(), image, K, mode="sliding")
    with pytest.raises(ValueError, match="crop_size"):
        predict_probs(Oracle(), image, K, mode="slide", crop_size=16)


def test_tiny_pspnet_all_modes():
    from train_tiny import tiny_config

    from minipsp.train import build_dataset, build_model, val_transform

    cfg = tiny_config()
    model = build_model(cfg)
    data = build_dataset(cfg, "val", val_transform())
    results = {}
    for mode in ("whole", "slide", "multiscale"):
        results[mode] = evaluate(model, data, cfg.classes, mode=mode, crop_size=cfg.crop_size, scales=(0.75, 1.0),
                                 count=1, progress=False)
        assert set(results[mode]) >= {"pixel_acc", "mean_acc", "iou", "miou"}
        assert 0 <= results[mode]["miou"] <= 1 and 0 <= results[mode]["pixel_acc"] <= 1
        assert results[mode]["iou"].shape == (cfg.classes,)
    assert model.training  # evaluate restores the mode
