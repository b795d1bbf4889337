"""Chapter 08's exercises: each check passes the reference solution and rejects plausible mistakes."""

import numpy as np
from course_helpers import make_chapter_tests

import minipsp
import minipsp.nn.functional as F


def _branch(x, b, w, pool=F.adaptive_avg_pool2d, order="bn-relu"):
    y = F.conv2d(pool(x, b), minipsp.tensor(w["conv_weight"]))
    bn = lambda t: F.batch_norm(t, w["running_mean"], w["running_var"], minipsp.tensor(w["bn_weight"]),  # noqa: E731
                                minipsp.tensor(w["bn_bias"]), training=False)
    return F.relu(bn(y)) if order == "bn-relu" else bn(F.relu(y))


def ppm_align_corners_false(x, branches, bins):
    up = [F.interpolate(_branch(x, b, w), size=x.shape[2:], mode="bilinear", align_corners=False)
          for b, w in zip(bins, branches)]
    return minipsp.cat([x, *up], dim=1)


def ppm_without_the_input(x, branches, bins):
    up = [F.interpolate(_branch(x, b, w), size=x.shape[2:], mode="bilinear", align_corners=True)
          for b, w in zip(bins, branches)]
    return minipsp.cat([*up, x], dim=1)          # the input last: the right channels, in the wrong order


def ppm_relu_before_bn(x, branches, bins):
    up = [F.interpolate(_branch(x, b, w, order="relu-bn"), size=x.shape[2:], mode="bilinear", align_corners=True)
          for b, w in zip(bins, branches)]
    return minipsp.cat([x, *up], dim=1)


def ppm_max_pooling(x, branches, bins):
    up = [F.interpolate(_branch(x, b, w, pool=F.adaptive_max_pool2d), size=x.shape[2:], mode="bilinear",
                        align_corners=True) for b, w in zip(bins, branches)]
    return minipsp.cat([x, *up], dim=1)


def landing_at_bin_centres(bins, size):
    return (np.arange(bins) + 0.5) * size / bins - 0.5


def landing_at_bin_starts(bins, size):
    return np.arange(bins) * size / bins


MISTAKES = {
    "8.1": [ppm_align_corners_false, ppm_without_the_input, ppm_relu_before_bn, ppm_max_pooling],
    "8.2": [landing_at_bin_centres, landing_at_bin_starts],
}

(test_solution_passes, test_mistake_rejected, test_stub_is_not_solved,
 test_chapter_has_exercises_and_mistakes) = make_chapter_tests(8, MISTAKES)


def test_ppm_check_names_the_wrong_branch():
    """8.1's message says which part of the concatenation is wrong (align_corners=False leaves bin 1 right)."""
    from minipsp.course import run

    result = run("8.1", ppm_align_corners_false)
    assert not result.passed
    first = result.message.split(";")[0]
    assert "the bin-2 branch" in first and "the bin-1 branch" not in first and "input x" not in first
    assert "output channels" in result.message
