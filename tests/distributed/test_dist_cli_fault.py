"""`mpiexec -n 2 minipsp train` when one rank meets a bad image or a NaN loss (issue 12, faults): the job ends
with a non-zero status well within its timeout (MPI Abort from the failing rank, never the other rank left
waiting in a collective), and the error is one line naming the rank and the cause, no traceback.

tests/distributed/test_dist_train.py's fault test raises inside a worker script; this one goes through the
CLI, whose errors are caught and printed (not raised) before the abort."""

import shutil
import sys

import numpy as np
from mpi_helpers import BIN, COMPILING_TIMEOUT, run_ranks
from PIL import Image

MINIPSP = [f"{BIN}/minipsp"] if (BIN and shutil.which("minipsp", path=BIN)) else [sys.executable, "-m", "minipsp.cli"]
TINY = ["train", "--layers", "18", "--width", "8", "--crop-size", "33", "--batch-size", "4", "--no-progress",
        "--set", "scale_min=1", "--set", "scale_max=1", "--set", "rotate_min=0", "--set", "rotate_max=0"]


def error_lines(stderr):
    """The ranks' one-line errors (MPICH's own 'Abort(2) on node ...' line and the like are not ours)."""
    return [line for line in stderr.splitlines() if "minipsp: error:" in line]


def assert_one_rank_named(done, *words):
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    lines = error_lines(done.stderr)
    assert lines, done.stderr
    for line in lines:           # every rank that reports names itself; the first to abort may end the other first
        assert line.startswith(("[rank 0 of 2] minipsp: error: ", "[rank 1 of 2] minipsp: error: ")), done.stderr
        for word in words:
            assert word in line, line


def test_a_truncated_image_on_one_rank_ends_the_job_naming_the_rank_and_the_file(tmp_path):
    lines = []
    for i in range(4):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (33, 33, 3), dtype=np.uint8)).save(
            tmp_path / f"img{i}.png")
        Image.fromarray(np.zeros((33, 33), np.uint8)).save(tmp_path / f"lab{i}.png")
        lines.append(f"img{i}.png lab{i}.png")
    data = (tmp_path / "img2.png").read_bytes()
    (tmp_path / "img2.png").write_bytes(data[: len(data) // 2])             # read by one rank in iteration 1
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    listing = tmp_path / "list.txt"
    done = run_ranks(2, MINIPSP + TINY + ["--iters", "2", "--classes", "10", "--data",
                                          f"list:{tmp_path}:{listing}:{listing}", "--out", str(tmp_path / "run")],
                     timeout=COMPILING_TIMEOUT, check=False)
    assert_one_rank_named(done, "img2.png", "not an image file Pillow can read")


def test_a_nan_loss_ends_the_job_naming_the_rank(tmp_path):
    done = run_ranks(2, MINIPSP + TINY + ["--iters", "3", "--lr", "1e30", "--set", "synthetic_train=8",
                                          "--set", "synthetic_size=33", "--set", "synthetic_val=2",
                                          "--out", str(tmp_path / "run")], timeout=COMPILING_TIMEOUT, check=False)
    assert done.returncode == 1, done.stderr
    assert_one_rank_named(done, "the loss is nan", "--lr 1e+30")
