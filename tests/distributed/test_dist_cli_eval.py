"""`mpiexec -n 2 minipsp eval` (issue 12): the images are split over the ranks and the confusion matrices summed
(tests/distributed/test_dist_eval.py checks the matrix exactly, through the API); through the CLI the printed
result equals the 1-process one and is printed once, by rank 0, for whole-image and sliding-window evaluation
of 5 images (3 on rank 0, 2 on rank 1)."""

import shutil
import subprocess
import sys

import pytest
from mpi_helpers import BIN, COMPILING_TIMEOUT, rank_env, run_ranks

MINIPSP = [f"{BIN}/minipsp"] if (BIN and shutil.which("minipsp", path=BIN)) else [sys.executable, "-m", "minipsp.cli"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    run = tmp_path_factory.mktemp("eval") / "run"
    subprocess.run(MINIPSP + ["train", "--layers", "18", "--width", "8", "--crop-size", "33", "--batch-size", "2",
                              "--iters", "1", "--no-progress", "--set", "synthetic_train=2",
                              "--set", "synthetic_size=33", "--set", "synthetic_val=5", "--out", str(run)],
                   check=True, capture_output=True, timeout=COMPILING_TIMEOUT, env=rank_env(), stdin=subprocess.DEVNULL)
    return str(run / "checkpoint.mpsp")


@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_two_rank_eval_prints_the_one_process_result_once(checkpoint, mode):
    command = ["eval", checkpoint, "--no-progress", "--mode", mode, "--count", "5"]
    single = run_ranks(1, MINIPSP + command, timeout=COMPILING_TIMEOUT)
    split = run_ranks(2, MINIPSP + command, timeout=COMPILING_TIMEOUT)
    result = [line for line in single.stdout.splitlines() if line.startswith("mIoU ")]
    assert len(result) == 1, single.stdout
    assert [line for line in split.stdout.splitlines() if line.startswith("mIoU ")] == result, split.stdout
