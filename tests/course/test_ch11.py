"""Chapter 11's exercises: each check passes the reference solution and rejects plausible mistakes."""

import numpy as np
from course_helpers import make_chapter_tests

from minipsp.course import run
from minipsp.course.solutions import ch11 as solutions

AXES = (0, 2, 3)


# -- 11.1 ------------------------------------------------------------------------------------------
def _normalise(shards, mean, var, weight, bias, eps):
    rstd = 1 / np.sqrt(var + eps)
    return [(s - mean[None, :, None, None]) * (weight * rstd)[None, :, None, None] + bias[None, :, None, None]
            for s in shards]


def _moments(shards):
    counts = np.array([s.shape[0] * s.shape[2] * s.shape[3] for s in shards], dtype=np.float64)[:, None]
    means = np.stack([s.mean(axis=AXES) for s in shards])
    m2s = np.stack([((s - m[None, :, None, None]) ** 2).sum(axis=AXES) for s, m in zip(shards, means)])
    return counts, means, m2s


def bn_unweighted_mean(shards, weight, bias, eps):
    """The ranks' means averaged as if they held equally many values."""
    counts, means, m2s = _moments(shards)
    M = counts.sum()
    mean = means.mean(axis=0)
    m2 = (m2s + counts * (means - mean) ** 2).sum(axis=0)
    return _normalise(shards, mean, m2 / M, weight, bias, eps), mean, m2 / (M - 1)


def bn_without_between_term(shards, weight, bias, eps):
    """M2 = sum M2_r: the pooled within-rank variance, as if every rank had the same mean."""
    counts, means, m2s = _moments(shards)
    M = counts.sum()
    mean = (counts * means).sum(axis=0) / M
    m2 = m2s.sum(axis=0)
    return _normalise(shards, mean, m2 / M, weight, bias, eps), mean, m2 / (M - 1)


def bn_sum_of_squares(shards, weight, bias, eps):
    """One Allreduce of sum x and sum x^2, var = E[x^2] - E[x]^2: right in exact arithmetic, not at a mean of 3e8."""
    M = sum(s.shape[0] * s.shape[2] * s.shape[3] for s in shards)
    s1 = sum(s.sum(axis=AXES) for s in shards)
    s2 = sum((s * s).sum(axis=AXES) for s in shards)
    mean = s1 / M
    var = s2 / M - mean ** 2
    return _normalise(shards, mean, np.maximum(var, 0), weight, bias, eps), mean, var * M / (M - 1)


def bn_normalised_with_unbiased(shards, weight, bias, eps):
    ys, mean, unbiased = solutions.sync_batch_norm_forward(shards, weight, bias, eps)
    return _normalise(shards, mean, unbiased, weight, bias, eps), mean, unbiased


def bn_returns_biased(shards, weight, bias, eps):
    ys, mean, unbiased = solutions.sync_batch_norm_forward(shards, weight, bias, eps)
    M = sum(s.shape[0] * s.shape[2] * s.shape[3] for s in shards)
    return ys, mean, unbiased * (M - 1) / M


# -- 11.2 ------------------------------------------------------------------------------------------
def ring_reduce_scatter_only(arrays, send):
    R = len(arrays)
    chunks = [np.array_split(np.asarray(a, dtype=np.float64), R) for a in arrays]
    for step in range(R - 1):
        for r in range(R):
            c, dst = (r - step) % R, (r + 1) % R
            chunks[dst][c] = chunks[dst][c] + send(r, dst, c, chunks[r][c])
    return [np.concatenate(c) for c in chunks]


def ring_chunk_index_forward(arrays, send):
    """Chunk (r + step) in the reduce-scatter: partial sums are added twice or not at all."""
    R = len(arrays)
    chunks = [np.array_split(np.asarray(a, dtype=np.float64), R) for a in arrays]
    for step in range(R - 1):
        for r in range(R):
            c, dst = (r + step) % R, (r + 1) % R
            chunks[dst][c] = chunks[dst][c] + send(r, dst, c, chunks[r][c])
    for step in range(R - 1):
        for r in range(R):
            c, dst = (r + 1 - step) % R, (r + 1) % R
            chunks[dst][c] = send(r, dst, c, chunks[r][c])
    return [np.concatenate(c) for c in chunks]


def ring_all_to_all(arrays, send):
    """Every rank sends its whole array to every other rank: right sums, R - 1 whole arrays sent per rank."""
    R = len(arrays)
    return [sum(send(src, dst, 0, arrays[src]) if src != dst else np.asarray(arrays[dst], dtype=np.float64)
                for src in range(R)) for dst in range(R)]


def ring_whole_arrays(arrays, send):
    """A ring, but passing whole partial sums round: right sums, R times the traffic."""
    R = len(arrays)
    acc = [np.asarray(a, dtype=np.float64) for a in arrays]
    partial = [a.copy() for a in acc]
    for _ in range(R - 1):
        partial = [send((r - 1) % R, r, 0, partial[(r - 1) % R]) for r in range(R)]
        acc = [a + p for a, p in zip(acc, partial)]
    return acc


# -- 11.3 ------------------------------------------------------------------------------------------
def shard_no_padding(order, rank, world_size, drop_last=False):
    return order[rank::world_size]


def shard_contiguous(order, rank, world_size, drop_last=False):
    n = len(order)
    k = n // world_size if drop_last else -(-n // world_size)
    padded = np.resize(order, k * world_size)
    return padded[rank * k:(rank + 1) * k]


def shard_pad_once(order, rank, world_size, drop_last=False):
    """order + order[:pad]: short when the padding is longer than the order (2 images, 5 ranks)."""
    n = len(order)
    if drop_last:
        return order[:world_size * (n // world_size)][rank::world_size]
    pad = world_size * -(-n // world_size) - n
    return np.concatenate([order, order[:pad]])[rank::world_size]


def shard_pad_with_last(order, rank, world_size, drop_last=False):
    """Pads by repeating the last index, not the first ones."""
    n = len(order)
    if drop_last:
        return order[:world_size * (n // world_size)][rank::world_size]
    pad = world_size * -(-n // world_size) - n
    return np.concatenate([order, np.full(pad, order[-1])])[rank::world_size]


def shard_positions(order, rank, world_size, drop_last=False):
    """The positions 0..n-1, not the indices the order holds."""
    return solutions.shard(np.arange(len(order)), rank, world_size, drop_last)


MISTAKES = {
    "11.1": [bn_unweighted_mean, bn_without_between_term, bn_sum_of_squares, bn_normalised_with_unbiased,
             bn_returns_biased],
    "11.2": [ring_reduce_scatter_only, ring_chunk_index_forward, ring_all_to_all, ring_whole_arrays],
    "11.3": [shard_no_padding, shard_contiguous, shard_pad_once, shard_pad_with_last, shard_positions],
}

(test_solution_passes, test_mistake_rejected, test_stub_is_not_solved,
 test_chapter_has_exercises_and_mistakes) = make_chapter_tests(11, MISTAKES)


def test_named_mistakes():
    assert "weight each by its count" in run("11.1", bn_unweighted_mean).message
    assert "between-rank term" in run("11.1", bn_without_between_term).message
    assert "3e8" in run("11.1", bn_sum_of_squares).message
    assert "normalised with the unbiased variance" in run("11.1", bn_normalised_with_unbiased).message
    assert "is the biased variance" in run("11.1", bn_returns_biased).message
    assert "R - 1 in the all-gather" in run("11.2", ring_reduce_scatter_only).message
    assert "only to its neighbour" in run("11.2", ring_all_to_all).message
    assert "values at once" in run("11.2", ring_whole_arrays).message
    assert "same number of steps" in run("11.3", shard_no_padding).message
    assert "contiguous block" in run("11.3", shard_contiguous).message


def test_sum_of_squares_is_right_without_a_large_mean():
    """E[x^2] - E[x]^2 is only caught by the large-mean case: in the others it is exact to float64."""
    rng = np.random.default_rng(0)
    shards = [rng.normal(size=(3, 2, 4, 5)), 1 + rng.normal(size=(1, 2, 4, 5))]
    w, b = rng.normal(size=2), rng.normal(size=2)
    for got, want in zip(bn_sum_of_squares(shards, w, b, 1e-5)[0], solutions.sync_batch_norm_forward(shards, w, b,
                                                                                                       1e-5)[0]):
        assert np.allclose(got, want, rtol=1e-9, atol=1e-9)


def test_notebook_exercises_run_in_one_process():
    """Notebook 11's exercise cells need no MPI (their shape and unsolved checks: test_notebooks.py)."""
    from pathlib import Path

    import nbformat

    cells = nbformat.read(Path(__file__).parents[2] / "notebooks" / "11_distributed.ipynb", as_version=4).cells
    starts = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("### Exercise 11.")]
    assert len(starts) == 3, starts
    for i in starts:
        assert "mpiexec" not in cells[i + 1].source + cells[i + 2].source, cells[i].source[:40]
