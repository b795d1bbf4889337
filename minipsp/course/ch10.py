"""Chapter 10 (evaluation): the checks of its exercises. The truth is minipsp.metrics (semseg's conventions).

10.1 confusion_matrix(pred, target, num_classes): C[t, p] counts pixels of true class t predicted p; 255 skipped.
10.2 iou_from_confusion(C): IoU per class and mIoU; a class absent from both prediction and label counts 0.
10.3 accuracies_from_confusion(C): pixel accuracy (allAcc) and mean class accuracy (mAcc).
"""

from __future__ import annotations

import numpy as np

from minipsp.course import Mismatch, exercise, expect_close, expect_equal
from minipsp.metrics import confusion_matrix, metrics_from_confusion

IGNORE = 255


def _cases():
    """(pred, target, K): a hand-sized case, one with ignored pixels and an absent class, and a random one."""
    rng = np.random.default_rng(10)
    target = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 255]])
    pred = np.array([[0, 0, 1, 0], [0, 1, 1, 1], [2, 2, 1, 0]])
    big_target = rng.integers(0, 4, size=(2, 9, 11))  # class 4 of 5 appears nowhere
    big_target[:, :2] = IGNORE
    big_pred = np.where(rng.random(big_target.shape) < 0.7, big_target % 255, rng.integers(0, 4, big_target.shape))
    big_pred[0, 0, 0] = 4  # ... except once in the prediction, on an ignored pixel: it must not count
    return [(pred, target, 3), (big_pred, big_target, 5), (rng.integers(0, 6, 200), rng.integers(0, 6, 200), 6)]


def _confusions():
    """Confusion matrices the checks feed 10.2 and 10.3: one with a class that is absent from both."""
    cases = [confusion_matrix(p, t, k) for p, t, k in _cases()]
    absent = np.array([[5, 1, 0, 0], [2, 7, 0, 1], [0, 0, 0, 0], [1, 0, 0, 3]])  # class 2: never seen, never predicted
    predicted_only = np.array([[4, 0, 2], [1, 3, 0], [0, 0, 0]])  # class 2: predicted twice, in no label
    return cases + [absent, predicted_only]


@exercise("10.1", "the confusion matrix, with ignored pixels", solution="confusion_matrix",
          hint="skip pixels whose *target* is 255 (the prediction is never 255); rows are the truth, columns the "
               "prediction; np.bincount(K * t + p, minlength=K * K).reshape(K, K) does it in one line")
def check_confusion_matrix(answer):
    for pred, target, k in _cases():
        got = answer(pred.copy(), target.copy(), k)
        expected = confusion_matrix(pred, target, k)
        if got is None or np.shape(got) != expected.shape:
            raise Mismatch(f"confusion_matrix(pred of shape {pred.shape}, K={k}): expected a ({k}, {k}) matrix, "
                           f"got {None if got is None else np.shape(got)}")
        got = np.asarray(got)
        if np.array_equal(got, expected.T):
            raise Mismatch(f"confusion_matrix is transposed: expected rows = truth, columns = prediction, "
                           f"C[t, p]; got C[p, t]. Expected\n{expected}\ngot\n{got}")
        if int(got.sum()) != int(expected.sum()):
            raise Mismatch(f"the matrix counts {int(got.sum())} pixels; {int(expected.sum())} are labelled "
                           f"(not 255) in this case")
        expect_equal(f"confusion_matrix on a {pred.shape} case with K={k}", got.tolist(), expected.tolist())
    return "C[t, p] matches minipsp.metrics.confusion_matrix on 3 cases (ignored pixels, a class never labelled)"


@exercise("10.2", "IoU per class and mIoU from a confusion matrix", solution="iou_from_confusion",
          hint="I = diag(C); U = row sums + column sums - I; IoU = I / U, and 0 where U = 0 (semseg divides by "
               "U + 1e-10); mIoU is the mean over all K classes, absent ones included")
def check_iou(answer):
    for conf in _confusions():
        out = answer(conf.copy())
        if not (isinstance(out, tuple) and len(out) == 2):
            raise Mismatch(f"return (iou, miou): a (K,) array and a number; got {type(out).__name__}")
        iou, miou = out
        truth = metrics_from_confusion(conf)
        expect_close(f"iou of\n{conf}\n", iou, truth["iou"], rtol=1e-9, atol=1e-9)
        if not np.isscalar(miou) and np.ndim(miou) != 0:
            raise Mismatch(f"miou must be one number, got an array of shape {np.shape(miou)}")
        expect_close(f"miou of\n{conf}\n", float(miou), truth["miou"], rtol=1e-9, atol=1e-9)
    return ("iou and miou match minipsp.metrics on 5 matrices, including a class absent from both prediction "
            "and label (IoU 0, counted in the mean) and one only predicted (IoU 0)")


@exercise("10.3", "pixel accuracy and mean class accuracy", solution="accuracies_from_confusion",
          hint="pixel accuracy = sum of the diagonal / all pixels; class accuracy k = C[k, k] / (pixels labelled k), "
               "i.e. divide by the row sum (the truth), and 0 for a class with no labelled pixel")
def check_accuracies(answer):
    for conf in _confusions():
        out = answer(conf.copy())
        if not (isinstance(out, tuple) and len(out) == 2):
            raise Mismatch(f"return (pixel_acc, mean_acc): two numbers; got {type(out).__name__}")
        truth = metrics_from_confusion(conf)
        expect_close(f"pixel_acc of\n{conf}\n", float(out[0]), truth["pixel_acc"], rtol=1e-9, atol=1e-9)
        expect_close(f"mean_acc of\n{conf}\n", float(out[1]), truth["mean_acc"], rtol=1e-9, atol=1e-9)
    return "pixel accuracy and mean class accuracy match minipsp.metrics on 5 matrices (absent classes included)"
