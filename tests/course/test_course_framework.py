"""The exercise framework itself: messages for solved, wrong, crashing and unsolved answers."""

import numpy as np
import pytest

from minipsp import course
from minipsp.course import Mismatch, check, expect_close, expect_equal, run


@pytest.fixture(autouse=True)
def square_exercise(monkeypatch):
    @course.exercise("99.1", "square every entry", solution="square", hint="x * x, not x + x")
    def check_square(square):
        x = np.array([1.0, -2.0, 3.0])
        expect_close("square([1, -2, 3])", square(x), x * x)
        return "square matches x * x on 3 values"

    monkeypatch.setattr(course.Exercise, "solution", lambda self: (lambda x: x * x))
    yield
    course._REGISTRY.pop("99.1")


def test_right_answer_passes(capsys):
    assert check("99.1", lambda x: x**2)
    assert "✓ Exercise 99.1 solved" in capsys.readouterr().out


def test_wrong_answer_names_expected_got_and_hint():
    result = run("99.1", lambda x: x + x)
    assert not result
    assert "expected 4 at index (1,), got -4 (3 of 3 entries off)" in result.message and "Hint" in result.message


def test_crash_is_one_line_with_the_line():
    def square(x):
        return x @ np.ones((5, 5))

    result = run("99.1", square)
    assert not result and "raised ValueError" in result.message and "x @ np.ones" in result.message


def test_stub_not_solved_and_solution_fallback(monkeypatch):
    def stub(x):
        raise NotImplementedError

    monkeypatch.delenv("MINIPSP_SOLUTIONS", raising=False)
    result = run("99.1", stub)
    assert not result and not result.solved and "not solved yet" in result.message
    monkeypatch.setenv("MINIPSP_SOLUTIONS", "1")
    result = run("99.1", stub)
    assert result and not result.solved and "reference solution was checked" in result.message


def test_unknown_exercise_is_a_clear_error():
    with pytest.raises(ValueError, match="no chapter"):
        run("98.1", 1)


def test_expect_helpers():
    expect_equal("n", 3, 3)
    with pytest.raises(Mismatch, match="expected 3, got 4"):
        expect_equal("n", 4, 3)
    with pytest.raises(Mismatch, match="expected shape"):
        expect_close("x", np.zeros(2), np.zeros(3))
    with pytest.raises(Mismatch, match="at index"):
        expect_close("x", np.array([0.0, 1.0]), np.zeros(2))


def test_scalar_mismatch_has_no_entry_count_and_enough_digits():
    with pytest.raises(Mismatch) as caught:
        expect_close("x", 1.0000001, 1.0, rtol=1e-9)
    assert "expected 1, got 1.0000001" in str(caught.value) and "entries off" not in str(caught.value)


def test_crash_points_at_the_learners_line_not_the_package():
    result = run("99.1", lambda x: x.no_such_method())
    assert "AttributeError" in result.message and "x.no_such_method()" in result.message
    assert "minipsp/course" not in result.message
