"""Metrics against hand-computed confusion matrices, and against semseg's intersectionAndUnion."""

import numpy as np
import pytest

import minipsp
from minipsp.metrics import SegmentationMetrics, confusion_matrix

# 3 classes; 255 marks ignored pixels.
TARGET = np.array([[0, 0, 1, 1],
                   [0, 2, 2, 255],
                   [1, 1, 2, 255]])
PRED = np.array([[0, 1, 1, 1],
                 [0, 2, 1, 0],
                 [1, 0, 2, 2]])
# Counted by hand (row = true class, column = predicted), the two ignored pixels left out:
#   true 0 at (0,0),(0,1),(1,0): predicted 0, 1, 0        -> [2, 1, 0]
#   true 1 at (0,2),(0,3),(2,0),(2,1): predicted 1,1,1,0  -> [1, 3, 0]
#   true 2 at (1,1),(1,2),(2,2): predicted 2, 1, 2        -> [0, 1, 2]
EXPECTED = np.array([[2, 1, 0],
                     [1, 3, 0],
                     [0, 1, 2]])


def semseg_intersection_and_union(output, target, K, ignore_index=255):
    """hszhao/semseg util.intersectionAndUnion, copied as the independent definition."""
    output = output.reshape(output.size).copy()
    target = target.reshape(target.size)
    output[np.where(target == ignore_index)[0]] = ignore_index
    intersection = output[np.where(output == target)[0]]
    area_intersection, _ = np.histogram(intersection, bins=np.arange(K + 1))
    area_output, _ = np.histogram(output, bins=np.arange(K + 1))
    area_target, _ = np.histogram(target, bins=np.arange(K + 1))
    return area_intersection, area_output + area_target - area_intersection, area_target


def test_confusion_matrix_by_hand():
    np.testing.assert_array_equal(confusion_matrix(PRED, TARGET, 3), EXPECTED)


def test_metrics_by_hand():
    m = SegmentationMetrics(3)
    m.update(PRED, TARGET)
    out = m.compute()
    # I = [2, 3, 2]; T = [3, 4, 3]; P = [3, 5, 2]; U = T + P - I = [4, 6, 3]
    np.testing.assert_allclose(out["iou"], [2 / 4, 3 / 6, 2 / 3])
    assert out["miou"] == pytest.approx((0.5 + 0.5 + 2 / 3) / 3)
    np.testing.assert_allclose(out["acc"], [2 / 3, 3 / 4, 2 / 3])
    assert out["mean_acc"] == pytest.approx((2 / 3 + 3 / 4 + 2 / 3) / 3)
    assert out["pixel_acc"] == pytest.approx(7 / 10)


def test_accumulates_over_batches_and_resets():
    m = SegmentationMetrics(3)
    m.update(PRED, TARGET)
    m.update(PRED[None], TARGET[None])  # a batch of one, (N, H, W)
    np.testing.assert_array_equal(m.confusion, 2 * EXPECTED)
    m.reset()
    assert m.confusion.sum() == 0


def test_absent_class_counts_zero_in_miou():
    target = np.array([[0, 0], [1, 1]])
    m = SegmentationMetrics(3)
    m.update(target, target)  # perfect on classes 0 and 1; class 2 never appears
    out = m.compute()
    np.testing.assert_allclose(out["iou"], [1, 1, 0], atol=1e-9)
    assert out["miou"] == pytest.approx(2 / 3)
    assert out["pixel_acc"] == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(5))
def test_matches_semseg_on_random_labels(seed):
    rng = np.random.default_rng(seed)
    K = 6
    ours = SegmentationMetrics(K)
    I, U, T = np.zeros(K), np.zeros(K), np.zeros(K)
    for _ in range(3):
        target = rng.integers(0, K, size=(2, 7, 9))
        target[rng.random(target.shape) < 0.2] = 255
        pred = rng.integers(0, K, size=target.shape)
        ours.update(minipsp.tensor(pred), target)  # Tensors are accepted too
        i, u, t = semseg_intersection_and_union(pred, target, K)
        I, U, T = I + i, U + u, T + t
    out = ours.compute()
    np.testing.assert_allclose(out["iou"], I / (U + 1e-10))
    assert out["miou"] == pytest.approx(np.mean(I / (U + 1e-10)))
    assert out["mean_acc"] == pytest.approx(np.mean(I / (T + 1e-10)))
    assert out["pixel_acc"] == pytest.approx(I.sum() / (T.sum() + 1e-10))


def test_custom_ignore_index():
    target = np.array([0, 1, -1, 2])
    pred = np.array([0, 1, 2, 0])
    np.testing.assert_array_equal(confusion_matrix(pred, target, 3, ignore_index=-1),
                                  [[1, 0, 0], [0, 1, 0], [1, 0, 0]])


def test_errors():
    with pytest.raises(ValueError, match="same shape"):
        confusion_matrix(PRED[:2], TARGET, 3)
    with pytest.raises(ValueError, match="target holds label 3"):
        confusion_matrix(PRED, np.where(TARGET == 2, 3, TARGET), 3)
    with pytest.raises(ValueError, match="pred holds label -1"):
        confusion_matrix(np.where(PRED == 2, -1, PRED), TARGET, 3)
    with pytest.raises(TypeError, match="integer"):
        confusion_matrix(PRED.astype(np.float32), TARGET, 3)
    with pytest.raises(ValueError, match="num_classes"):
        SegmentationMetrics(0)
