"""Exercises of the course: the learner writes the code, a check says whether it is right.

In a notebook an exercise is three cells:

    ### Exercise 1.1 — the topological order          (markdown: the task)

    def topological_order(root):                      (code: the learner's stub)
        ...                                           # your code here
        raise NotImplementedError

    from minipsp.course import check                  (code: the check)
    check("1.1", topological_order)

`check` runs the learner's answer against the package (or against `gradcheck`) and prints one of
    ✓ Exercise 1.1 solved: <what was checked>
    ✗ Exercise 1.1 not right yet: <what was expected, what came, a hint>
    … Exercise 1.1 not solved yet: <where to write, where the solution is>
It never raises (an AssertionError deep in a check teaches nothing); it returns a `Result`, which is
truthy when the answer passed.

An answer is a function, a class or a value. A function that raises NotImplementedError, or the
value `...` (Ellipsis), means "not solved yet". With the environment variable MINIPSP_SOLUTIONS=1
an unsolved exercise is checked on the reference solution instead, so a notebook executed with the
exercises blank (as CI does) still runs every check.

Where things live:
- `minipsp/course/chNN.py`: the checks of chapter NN, each registered with `@exercise("N.k", ...)`.
- `minipsp/course/solutions/chNN.py`: the reference solutions, one place to open when stuck.
- `tests/course/test_chNN.py`: for every exercise, the check passes the reference solution and rejects
  at least one planted, plausible mistake (tests/course/course_helpers.py makes
  those tests for a chapter and proves none is missing).

Writing a check: a function `check_fn(answer)` that calls the answer on a few cases and raises
`Mismatch("expected ..., got ..., hint: ...")` at the first wrong one (the helpers `expect_close`
and `expect_equal` build such messages); it returns a short string saying what was checked.
"""

from __future__ import annotations

import importlib
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Mismatch", "Result", "check", "exercise", "expect_close", "expect_equal", "registry", "solution"]

SOLUTIONS_ENV = "MINIPSP_SOLUTIONS"


class Mismatch(Exception):
    """A check found a wrong answer; the message says what was expected, what came, and a hint."""


class NotSolved(Exception):
    """The learner's answer is still the stub."""


@dataclass
class Exercise:
    number: str  # "N.k": chapter N, exercise k
    title: str
    check_fn: Callable[[Any], str]  # raises Mismatch; returns what it checked
    solution_name: str  # attribute of minipsp.course.solutions.chNN
    hint: str = ""

    @property
    def chapter(self) -> int:
        return int(self.number.split(".")[0])

    def solution(self):
        module = importlib.import_module(f"minipsp.course.solutions.ch{self.chapter:02d}")
        return getattr(module, self.solution_name)


@dataclass
class Result:
    number: str
    passed: bool
    solved: bool  # False: the stub was left (and, with MINIPSP_SOLUTIONS=1, the solution was checked)
    message: str
    details: list[str] = field(default_factory=list)

    def __bool__(self):
        return self.passed

    def __repr__(self):
        return self.message


_REGISTRY: dict[str, Exercise] = {}


def exercise(number: str, title: str, solution: str, hint: str = ""):
    """Register `check_fn` as the check of exercise `number`; `solution` names its reference answer."""

    def register(check_fn):
        if number in _REGISTRY:
            raise ValueError(f"exercise {number} is registered twice")
        _REGISTRY[number] = Exercise(number, title, check_fn, solution, hint)
        return check_fn

    return register


def _load_chapter(chapter: int):
    importlib.import_module(f"minipsp.course.ch{chapter:02d}")


def registry(chapter: int | None = None) -> dict[str, Exercise]:
    """Every registered exercise (of one chapter, or of every chapter module that exists)."""
    if chapter is not None:
        _load_chapter(chapter)
    else:
        here = os.path.dirname(__file__)
        for name in sorted(os.listdir(here)):
            if name.startswith("ch") and name.endswith(".py"):
                importlib.import_module(f"minipsp.course.{name[:-3]}")
    return {k: v for k, v in _REGISTRY.items() if chapter is None or v.chapter == chapter}


def _lookup(number: str) -> Exercise:
    if not isinstance(number, str) or "." not in number:
        raise ValueError(f"check: exercise number must be a string like '1.1', got {number!r}")
    if number not in _REGISTRY:
        try:
            _load_chapter(int(number.split(".")[0]))
        except (ValueError, ModuleNotFoundError) as error:
            raise ValueError(f"check: there is no chapter for exercise {number!r}") from error
    if number not in _REGISTRY:
        known = ", ".join(sorted(k for k in _REGISTRY if k.split(".")[0] == number.split(".")[0]))
        raise ValueError(f"check: no exercise {number!r}; this chapter has {known or 'none'}")
    return _REGISTRY[number]


def solution(number: str):
    """The reference solution of an exercise (what `minipsp/course/solutions/chNN.py` holds)."""
    return _lookup(number).solution()


def _is_stub(answer) -> bool:
    return answer is Ellipsis


def run(number: str, answer) -> Result:
    """Check `answer` for exercise `number` without printing: a Result (for tests and notebooks)."""
    ex = _lookup(number)
    where = f"minipsp/course/solutions/ch{ex.chapter:02d}.py ({ex.solution_name})"
    try:
        if _is_stub(answer):
            raise NotSolved
        what = _call_check(ex, answer)
        return Result(number, True, True, f"✓ Exercise {number} solved: {what}")
    except NotSolved:
        if os.environ.get(SOLUTIONS_ENV) == "1":
            try:
                what = _call_check(ex, ex.solution())
            except (Mismatch, NotSolved) as error:  # a broken reference solution is a bug of ours: say so loudly
                raise RuntimeError(f"the reference solution of exercise {number} fails its check: {error}") from error
            return Result(number, True, False,
                          f"… Exercise {number} not solved yet; {SOLUTIONS_ENV}=1, so the reference solution was "
                          f"checked instead: {what}")
        return Result(number, False, False,
                      f"… Exercise {number} not solved yet: replace the stub (the `...` or the "
                      f"`raise NotImplementedError`) with your code and run this cell again. "
                      f"Stuck? The solution is in {where}.")
    except Mismatch as error:
        hint = f" Hint: {ex.hint}" if ex.hint and "hint" not in str(error).lower() else ""
        return Result(number, False, True, f"✗ Exercise {number} not right yet: {error}{hint}")
    except Exception as error:  # the learner's code crashed: show where, briefly, not a 40-line traceback
        at = _where(traceback.extract_tb(error.__traceback__))
        return Result(number, False, True,
                      f"✗ Exercise {number}: your code raised {type(error).__name__}: {error}{at}")


def _where(frames) -> str:
    """Where the learner's code failed: the last frame outside this package (a notebook cell's file is
    a temporary one named by Jupyter, so it is called "your cell")."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    theirs = [f for f in frames if not os.path.abspath(f.filename).startswith(package)]
    if not theirs:
        return ""
    frame = theirs[-1]
    name = os.path.basename(frame.filename)
    place = "your cell" if name.startswith("<ipython-input") or "ipykernel" in frame.filename or name[:-3].isdigit() \
        else name
    return f" (at line {frame.lineno} of {place}: {frame.line})"


def _call_check(ex: Exercise, answer) -> str:
    try:
        return ex.check_fn(answer)
    except NotImplementedError as error:
        raise NotSolved from error


def check(number: str, answer) -> Result:
    """Check the learner's `answer` for exercise `number` and print what came out (never raises)."""
    result = run(number, answer)
    print(result.message)
    return result


# -- helpers that build the messages checks raise ------------------------------------------------------
def expect_close(what: str, got, expected, rtol: float = 1e-6, atol: float = 1e-9, hint: str = ""):
    """Raise Mismatch unless `got` equals `expected` to the tolerance; the message shows the worst entry."""
    expected = np.asarray(expected)
    if got is None or got is Ellipsis:
        raise Mismatch(f"{what}: expected an array of shape {expected.shape}, got {got!r}." + _hint(hint))
    got_array = np.asarray(getattr(got, "data", got))  # a Tensor's array, or the value itself
    if got_array.shape != expected.shape:
        raise Mismatch(f"{what}: expected shape {expected.shape}, got shape {got_array.shape}." + _hint(hint))
    if not np.all(np.isfinite(got_array)) and np.all(np.isfinite(expected)):
        raise Mismatch(f"{what}: got inf or nan where every expected value is finite." + _hint(hint))
    error = np.abs(got_array.astype(np.float64) - expected.astype(np.float64))
    bound = atol + rtol * np.abs(expected.astype(np.float64))
    if np.all(error <= bound):
        return
    worst = np.unravel_index(int(np.argmax(error - bound)), error.shape) if error.ndim else ()
    at = f" at index {tuple(int(i) for i in worst)}" if worst else ""
    off = f" ({int(np.sum(error > bound))} of {error.size} entries off)" if error.size > 1 else ""
    raise Mismatch(f"{what}: expected {_fmt(expected[worst])}{at}, got {_fmt(got_array[worst])}{off}." + _hint(hint))


def expect_equal(what: str, got, expected, hint: str = ""):
    """Raise Mismatch unless `got == expected` (for integers, lists, tuples, strings)."""
    same = got == expected
    if isinstance(same, np.ndarray):
        same = bool(np.all(same)) and np.shape(got) == np.shape(expected)
    if not same:
        raise Mismatch(f"{what}: expected {expected!r}, got {got!r}." + _hint(hint))


def _hint(hint: str) -> str:
    return f" Hint: {hint}" if hint else ""


def _fmt(value) -> str:
    value = np.asarray(value)
    if value.ndim == 0 and np.issubdtype(value.dtype, np.floating):
        return f"{float(value):.10g}"  # enough digits that two close numbers do not print the same
    return repr(value.tolist())
