"""What every chapter's exercise tests prove: the check passes the reference solution, rejects each
planted mistake with a helpful message, and treats the untouched stub as "not solved yet"."""

import pytest

from minipsp.course import registry, run, solution


def _stub(*args, **kwargs):
    raise NotImplementedError


def make_chapter_tests(chapter: int, mistakes: dict):
    """Tests for chapter `chapter`; `mistakes` maps "N.k" to a list of plausible wrong answers."""
    numbers = sorted(registry(chapter), key=lambda n: int(n.split(".")[1]))
    cases = [(n, i) for n in numbers for i in range(len(mistakes.get(n, [])))]

    @pytest.mark.parametrize("number", numbers)
    def test_solution_passes(number):
        result = run(number, solution(number))
        assert result.passed and result.solved, result.message

    @pytest.mark.parametrize("number,index", cases, ids=[f"{n}-mistake{i}" for n, i in cases])
    def test_mistake_rejected(number, index):
        result = run(number, mistakes[number][index])
        assert not result.passed, f"exercise {number}: planted mistake {index} was accepted: {result.message}"
        assert result.solved and result.message.startswith("✗"), result.message
        # A helpful message says what was wrong, not just "no".
        assert len(result.message) > 40, result.message

    @pytest.mark.parametrize("number", numbers)
    def test_stub_is_not_solved(number, monkeypatch):
        monkeypatch.delenv("MINIPSP_SOLUTIONS", raising=False)
        stub = ... if not callable(solution(number)) else _stub
        result = run(number, stub)
        assert not result.passed and not result.solved, result.message
        monkeypatch.setenv("MINIPSP_SOLUTIONS", "1")
        result = run(number, stub)
        assert result.passed and not result.solved, result.message

    def test_chapter_has_exercises_and_mistakes():
        assert 2 <= len(numbers) <= 4, f"chapter {chapter} has {len(numbers)} exercises, expected 2-4"
        missing = [n for n in numbers if not mistakes.get(n)]
        assert not missing, f"exercises without a planted mistake: {missing}"
        unknown = sorted(set(mistakes) - set(numbers))
        assert not unknown, f"mistakes for exercises that do not exist: {unknown}"

    return test_solution_passes, test_mistake_rejected, test_stub_is_not_solved, test_chapter_has_exercises_and_mistakes
