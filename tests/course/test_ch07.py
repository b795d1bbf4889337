"""Chapter 07's exercises: each check passes the reference solution and rejects plausible mistakes."""

from course_helpers import make_chapter_tests


def output_size_without_dilation(size, kernel_size, stride=1, padding=0, dilation=1):
    return (size + 2 * padding - kernel_size) // stride + 1


def output_size_rounded_up(size, kernel_size, stride=1, padding=0, dilation=1):
    span = dilation * (kernel_size - 1) + 1
    return -(-(size + 2 * padding - span) // stride) + 1


def output_size_divided(size, kernel_size, stride=1, padding=0, dilation=1):
    return (size + 2 * padding - dilation * (kernel_size - 1)) // stride   # forgot the + 1 position


def rf_ignoring_dilation(layers):
    rf, jump = 1, 1
    for k, s, _d in layers:
        rf += (k - 1) * jump
        jump *= s
    return rf


def rf_stride_first(layers):
    rf, jump = 1, 1
    for k, s, d in layers:
        jump *= s                    # the layer's own stride applied to its own taps
        rf += d * (k - 1) * jump
    return rf


def rf_ignoring_strides(layers):
    return 1 + sum(d * (k - 1) for k, s, d in layers)


MISTAKES = {
    "7.1": [output_size_without_dilation, output_size_rounded_up, output_size_divided],
    "7.2": [rf_ignoring_dilation, rf_stride_first, rf_ignoring_strides],
}

(test_solution_passes, test_mistake_rejected, test_stub_is_not_solved,
 test_chapter_has_exercises_and_mistakes) = make_chapter_tests(7, MISTAKES)


def test_the_measurement_matches_the_package_walk():
    """The check's autograd measurement agrees with minipsp.models.shallow.receptive_field on the shallow net."""
    from minipsp.course.ch07 import RF_STACKS, measured_receptive_field
    from minipsp.models.shallow import ShallowDilatedNet

    assert measured_receptive_field(RF_STACKS[-1]) == ShallowDilatedNet(8).receptive_field == 115
