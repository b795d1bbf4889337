"""Chapter 10's exercises: each check passes the reference solution and rejects plausible mistakes."""

import numpy as np
from course_helpers import make_chapter_tests

from minipsp.course.solutions import ch10 as solutions


def confusion_keeps_ignored(pred, target, k):  # 255 not skipped: bincount of 255 * K + p overflows the matrix
    pred, target = np.asarray(pred).ravel(), np.asarray(target).ravel()
    target = np.where(target == 255, 0, target)  # "fixed" by calling ignored pixels class 0
    return np.bincount(k * target + pred, minlength=k * k).reshape(k, k)


def confusion_transposed(pred, target, k):  # rows = prediction
    return solutions.confusion_matrix(pred, target, k).T


def confusion_without_minlength(pred, target, k):  # bincount stops at the largest code seen
    pred, target = np.asarray(pred).ravel(), np.asarray(target).ravel()
    keep = target != 255
    return np.bincount(k * target[keep] + pred[keep]).reshape(k, k)


def iou_over_present_classes(conf):  # nanmean over seen classes: not semseg's convention
    conf = np.asarray(conf, float)
    inter = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / union
    return np.nan_to_num(iou), float(np.nanmean(iou))


def iou_intersection_over_target(conf):  # divides by the label area: that is the class accuracy
    conf = np.asarray(conf, float)
    iou = np.diag(conf) / (conf.sum(1) + 1e-10)
    return iou, float(iou.mean())


def iou_union_double_counts(conf):  # forgets to subtract the intersection
    conf = np.asarray(conf, float)
    iou = np.diag(conf) / (conf.sum(0) + conf.sum(1) + 1e-10)
    return iou, float(iou.mean())


def accuracy_by_prediction(conf):  # class accuracy over the predicted area (that is precision)
    conf = np.asarray(conf, float)
    return float(np.trace(conf) / conf.sum()), float((np.diag(conf) / (conf.sum(0) + 1e-10)).mean())


def accuracy_mean_of_present(conf):  # mAcc over classes that have labels only
    conf = np.asarray(conf, float)
    present = conf.sum(1) > 0
    return float(np.trace(conf) / conf.sum()), float((np.diag(conf)[present] / conf.sum(1)[present]).mean())


MISTAKES = {
    "10.1": [confusion_keeps_ignored, confusion_transposed, confusion_without_minlength],
    "10.2": [iou_over_present_classes, iou_intersection_over_target, iou_union_double_counts],
    "10.3": [accuracy_by_prediction, accuracy_mean_of_present],
}

(test_solution_passes, test_mistake_rejected, test_stub_is_not_solved,
 test_chapter_has_exercises_and_mistakes) = make_chapter_tests(10, MISTAKES)
