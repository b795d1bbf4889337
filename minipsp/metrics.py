"""Segmentation metrics: the confusion matrix and what semseg reports from it.

Over a whole dataset, with K classes and pixels labelled `ignore_index` left out:

    C[t, p]      = number of pixels of true class t predicted as p          (K, K)
    I_k = C[k,k]     T_k = sum_p C[k,p] (target area)     P_k = sum_t C[t,k] (predicted area)
    U_k = T_k + P_k - I_k                                                   (union)
    iou_k = I_k / (U_k + 1e-10)        mIoU = mean_k iou_k        (a class never seen counts as 0)
    acc_k = I_k / (T_k + 1e-10)        mAcc = mean_k acc_k
    allAcc (pixel accuracy) = sum_k I_k / (sum_k T_k + 1e-10)

These are hszhao/semseg's `intersectionAndUnion` conventions, accumulated over every image before
dividing (not averaged per image), so the numbers compare with the published ones.
"""

from __future__ import annotations

import numpy as np

from minipsp.backend import to_numpy

EPS = 1e-10


def _as_array(x):
    return x.data if hasattr(x, "_node") else x  # a minipsp Tensor -> its array


def confusion_matrix(pred, target, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """C (K, K) int64 with C[t, p] = #pixels where target == t and pred == p; target == ignore_index skipped.

    pred and target: integer arrays (or Tensors) of the same shape, e.g. (N, H, W); NumPy or CuPy.
    """
    pred, target = _as_array(pred), _as_array(target)
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1; got {num_classes!r}")
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(f"pred and target must have the same shape; got pred {tuple(pred.shape)} and "
                         f"target {tuple(target.shape)} (pass class indices, e.g. logits.argmax(1), not logits)")
    for name, a in (("pred", pred), ("target", target)):
        if a.dtype.kind not in "iub":
            raise TypeError(f"{name} must hold integer class indices; got dtype {a.dtype}")
    # Scored on the host: predictions often come off the GPU while labels come from the (CPU) loader,
    # and the confusion matrix is a small bincount either way.
    pred, target = to_numpy(pred).astype(np.int64).ravel(), to_numpy(target).astype(np.int64).ravel()
    valid = target != ignore_index
    pred, target = pred[valid], target[valid]
    for name, a in (("target", target), ("pred", pred)):
        bad = (a < 0) | (a >= num_classes)
        if bool(bad.any()):
            value = int(a[bad][0])
            raise ValueError(f"{name} holds label {value}, outside [0, {num_classes}) and not the ignore_index "
                             f"{ignore_index} (wrong num_classes, or labels not remapped?)")
    counts = np.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def metrics_from_confusion(confusion: np.ndarray) -> dict:
    """pixel_acc, mean_acc, acc (K,), iou (K,), miou, intersection, union, target from a (K, K) matrix."""
    confusion = np.asarray(confusion, dtype=np.float64)
    intersection = np.diag(confusion)
    area_target = confusion.sum(axis=1)
    area_pred = confusion.sum(axis=0)
    union = area_target + area_pred - intersection
    iou = intersection / (union + EPS)
    acc = intersection / (area_target + EPS)
    return {
        "pixel_acc": float(intersection.sum() / (area_target.sum() + EPS)),
        "mean_acc": float(acc.mean()),
        "acc": acc,
        "iou": iou,
        "miou": float(iou.mean()),
        "intersection": intersection,
        "union": union,
        "target": area_target,
    }


class SegmentationMetrics:
    """Accumulate a confusion matrix over batches; `compute()` gives the dataset's metrics.

        metrics = SegmentationMetrics(num_classes=150)
        for images, labels in loader:
            metrics.update(model(images).argmax(1), labels)
        metrics.compute()["miou"]
    """

    def __init__(self, num_classes: int, ignore_index: int = 255):
        if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise ValueError(f"num_classes must be an int >= 1; got {num_classes!r}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        self.confusion = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, pred, target) -> None:
        """Add one batch: pred and target integer arrays of the same shape (labels, not logits)."""
        self.confusion += confusion_matrix(pred, target, self.num_classes, self.ignore_index)

    def compute(self) -> dict:
        """{"pixel_acc", "mean_acc", "acc", "iou", "miou", ...}: see `metrics_from_confusion`."""
        return metrics_from_confusion(self.confusion)

    def __repr__(self):
        m = self.compute()
        return (f"SegmentationMetrics(num_classes={self.num_classes}, mIoU={m['miou']:.4f}, "
                f"mAcc={m['mean_acc']:.4f}, allAcc={m['pixel_acc']:.4f})")
