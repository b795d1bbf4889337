"""Chapter 10 (evaluation): reference solutions. Open after you have tried; the check's message comes first."""

import numpy as np


def confusion_matrix(pred, target, num_classes, ignore_index=255):
    """C (K, K): C[t, p] = number of pixels with target t and prediction p; target == ignore_index skipped."""
    pred, target = np.asarray(pred).ravel(), np.asarray(target).ravel()
    keep = target != ignore_index
    codes = num_classes * target[keep] + pred[keep]  # one number per (t, p) pair
    return np.bincount(codes, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_from_confusion(confusion):
    """(iou (K,), miou): IoU_k = C[k,k] / (row k + column k - C[k,k]); 0 for a class in neither (semseg)."""
    confusion = np.asarray(confusion, dtype=np.float64)
    intersection = np.diag(confusion)
    union = confusion.sum(axis=1) + confusion.sum(axis=0) - intersection
    iou = intersection / (union + 1e-10)  # union 0 -> intersection 0 -> IoU 0
    return iou, float(iou.mean())


def accuracies_from_confusion(confusion):
    """(pixel_acc, mean_acc): trace / total, and the mean over classes of C[k,k] / (pixels labelled k)."""
    confusion = np.asarray(confusion, dtype=np.float64)
    intersection = np.diag(confusion)
    pixel_acc = intersection.sum() / (confusion.sum() + 1e-10)
    class_acc = intersection / (confusion.sum(axis=1) + 1e-10)
    return float(pixel_acc), float(class_acc.mean())
