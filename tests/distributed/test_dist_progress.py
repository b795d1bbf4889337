"""Under `mpiexec -n 2 minipsp train` rank 0 alone shows the progress bar (issue 12): one bar starts (0/2),
not one per rank, while every rank trains."""

import shutil
import sys

from mpi_helpers import BIN, COMPILING_TIMEOUT, run_ranks

MINIPSP = [f"{BIN}/minipsp"] if (BIN and shutil.which("minipsp", path=BIN)) else [sys.executable, "-m", "minipsp.cli"]


def test_one_progress_bar_for_the_world(tmp_path):
    done = run_ranks(2, MINIPSP + ["train", "--layers", "18", "--width", "8", "--crop-size", "33", "--batch-size", "4",
                                   "--iters", "2", "--set", "synthetic_train=8", "--set", "synthetic_size=33",
                                   "--set", "synthetic_val=2", "--out", str(tmp_path / "run")],
                     timeout=COMPILING_TIMEOUT)
    frames = done.stderr.replace("\r", "\n").splitlines()
    starts = [f for f in frames if f.startswith("train:") and "| 0/2 " in f]
    assert len(starts) == 1, done.stderr
    assert any(f.startswith("train: 100%") and "| 2/2 " in f for f in frames), done.stderr
