"""Evaluation split over 2 ranks (images r, r + 2, ...; 3 and 2 of 5) == one process: the same confusion
matrix, exactly (test 6)."""

import os
import subprocess
import sys

import numpy as np
from mpi_helpers import COMPILING_TIMEOUT, WORKERS, rank_env, run_worker


def test_distributed_evaluation_equals_single_process(tmp_path):
    split, single = tmp_path / "split", tmp_path / "single"
    split.mkdir(), single.mkdir()
    run_worker(2, "evaluate_split", split, 5, timeout=COMPILING_TIMEOUT)
    # one process without mpiexec: a world of 1, every image on it
    done = subprocess.run([sys.executable, WORKERS, "evaluate_split", str(single), "5"], capture_output=True,
                          text=True, timeout=COMPILING_TIMEOUT, env=rank_env())
    assert done.returncode == 0, done.stderr
    want = np.load(single / "rank0.npz")
    assert want["confusion"].sum() == 5 * 33 * 33          # every pixel of the 5 images counted once
    for rank in (0, 1):
        got = np.load(split / f"rank{rank}.npz")
        np.testing.assert_array_equal(got["confusion"], want["confusion"])
        assert float(got["miou"]) == float(want["miou"]) and float(got["pixel_acc"]) == float(want["pixel_acc"])
    assert not os.path.exists(single / "rank1.npz")
