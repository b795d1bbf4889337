"""`mpiexec -n 2 minipsp train`: a 2-rank checkpoint resumes on 2 ranks and on 1 with the same losses (test 7),
and one failing rank ends the whole job, named, never a hang (test 8).

A width-8 PSPNet-18 on 33 px crops, no random scaling or rotation and crop = image, so that no pixel is
ignored: each rank's loss is the mean over its own pixels (as in semseg and torch's DDP), which equals the
global mean only when every rank has as many labelled pixels.
"""

import json
import shutil
import sys

import numpy as np
import pytest
from mpi_helpers import BIN, COMPILING_TIMEOUT, run_ranks, run_worker

import minipsp

MINIPSP = [f"{BIN}/minipsp"] if (BIN and shutil.which("minipsp", path=BIN)) else [sys.executable, "-m", "minipsp.cli"]
TINY = ["--layers", "18", "--width", "8", "--crop-size", "33", "--batch-size", "4", "--no-progress",
        "--set", "synthetic_train=8", "--set", "synthetic_size=33", "--set", "scale_min=1", "--set", "scale_max=1",
        "--set", "rotate_min=0", "--set", "rotate_max=0", "--set", "dropout=0", "--set", "log_every=1",
        "--set", "checkpoint_every=2"]


def losses(run):
    """{iteration: loss}, the number of loss lines, and the log's world records."""
    with open(run / "log.jsonl") as f:
        records = [json.loads(line) for line in f]
    return ({r["iter"]: r["loss"] for r in records if "loss" in r}, sum("loss" in r for r in records),
            [r for r in records if "world" in r])


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """A 2-rank run to iteration 2 (checkpointed there)."""
    first = tmp_path_factory.mktemp("first") / "run"
    run_ranks(2, MINIPSP + ["train", *TINY, "--iters", "2", "--out", str(first)], timeout=COMPILING_TIMEOUT)
    return first


def test_two_rank_checkpoint_resumes_on_two_ranks_and_on_one(tmp_path, first):
    state = minipsp.load(str(first / "checkpoint.mpsp"))
    assert state["iteration"] == 2 and not any(k.startswith("module.") for k in state["model"])
    assert isinstance(state["rng"], list) and len(state["rng"]) == 2          # every rank's dropout stream
    two, one = tmp_path / "two", tmp_path / "one"
    shutil.copytree(first, two)
    shutil.copytree(first, one)
    done = run_ranks(2, MINIPSP + ["train", "--out", str(two), "--resume", "--iters", "4", "--no-progress"],
                     timeout=300)
    assert done.stdout.count("checkpoint:") == 1                              # rank 0 alone reports
    run_ranks(1, MINIPSP + ["train", "--out", str(one), "--resume", "--iters", "4", "--no-progress"], timeout=300)
    (two_losses, two_lines, two_worlds), (one_losses, one_lines, one_worlds) = losses(two), losses(one)
    assert sorted(two_losses) == sorted(one_losses) == [1, 2, 3, 4]
    assert two_lines == one_lines == 4                                        # one line per iteration: rank 0 writes
    world = {"ranks": 2, "sync_bn": True}
    assert two_worlds == [{"iter": 0, "world": world}, {"iter": 2, "world": world}]
    # the 1-rank part says so (sync_bn is then moot: a world of 1 is plain batch norm)
    assert one_worlds == [{"iter": 0, "world": world}, {"iter": 2, "world": {"ranks": 1, "sync_bn": True}}]
    for it in (3, 4):          # float32: the 2-rank gradient is a mean of two halves, the 1-rank one a single sum
        np.testing.assert_allclose(two_losses[it], one_losses[it], rtol=2e-5)
    assert two_losses[4] != two_losses[3]


def test_predict_under_mpiexec_writes_each_file_once(tmp_path, first):
    """Every rank would write the same PNGs at the same moment (a torn file): rank 0 alone predicts."""
    from PIL import Image

    images = []
    for i in range(2):
        images.append(str(tmp_path / f"photo{i}.png"))
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (33, 41, 3), dtype=np.uint8)).save(images[-1])
    out = tmp_path / "pred"
    done = run_ranks(2, MINIPSP + ["predict", str(first / "checkpoint.mpsp"), *images, "-o", str(out)], timeout=300)
    written = done.stdout.split()
    expected = [str(out / f"photo{i}_{kind}.png") for i in range(2) for kind in ("pred", "overlay")]
    assert sorted(written) == sorted(expected)
    for path in written:
        assert Image.open(path).size == (41, 33)


def test_plot_under_mpiexec_writes_each_file_once(first):
    done = run_ranks(2, MINIPSP + ["plot", str(first), "--count", "0"], timeout=300)
    assert done.stdout.split() == [str(first / "curves.png")]


def test_a_usage_error_is_printed_once(tmp_path):
    done = run_ranks(2, MINIPSP + ["train", "--no-such-flag", "--out", str(tmp_path / "x")], timeout=120, check=False)
    assert done.returncode != 0
    assert done.stderr.count("unrecognized arguments: --no-such-flag") == 1, done.stderr
    assert done.stderr.count("usage:") == 1, done.stderr


def test_help_says_the_batch_is_global():
    from minipsp.cli import build_parser

    parser = build_parser()
    text = parser._subparsers._group_actions[0].choices["train"].format_help()
    assert "global batch" in text and "--no-sync-bn" in text


@pytest.mark.parametrize("how", ["raise", "kill"])
def test_one_failing_rank_ends_the_job(tmp_path, how):
    done = run_worker(2, "fault", tmp_path, how, timeout=300, check=False)    # a hang fails here, at 300 s
    assert done.returncode != 0
    if how == "raise":
        lines = [line for line in done.stderr.splitlines() if line.startswith("[rank 1 of 2]")]
        assert len(lines) == 1 and "FileNotFoundError: no such image: scene_0001.png" in lines[0], done.stderr
