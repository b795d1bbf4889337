"""`mpiexec -n 2 minipsp train --no-sync-bn` (issue 12): batch norm then normalises each rank's 2 images by their
own statistics, so the first loss differs from the 1-process run on the same 4 images, which the synchronized
default matches (to float32 rounding); the log's world record says which it was. Settings as in
test_dist_train.py: no random scaling or rotation, dropout 0, crop = image, so no pixel is ignored."""

import json
import shutil
import sys

import numpy as np
from mpi_helpers import BIN, COMPILING_TIMEOUT, run_ranks

MINIPSP = [f"{BIN}/minipsp"] if (BIN and shutil.which("minipsp", path=BIN)) else [sys.executable, "-m", "minipsp.cli"]
TINY = ["train", "--layers", "18", "--width", "8", "--crop-size", "33", "--batch-size", "4", "--iters", "1",
        "--no-progress", "--set", "synthetic_train=8", "--set", "synthetic_size=33", "--set", "synthetic_val=2",
        "--set", "scale_min=1", "--set", "scale_max=1", "--set", "rotate_min=0", "--set", "rotate_max=0",
        "--set", "dropout=0", "--set", "log_every=1"]


def first_loss_and_world(run):
    with open(run / "log.jsonl") as f:
        records = [json.loads(line) for line in f]
    loss = [r["loss"] for r in records if r.get("iter") == 1 and "loss" in r]
    worlds = [r["world"] for r in records if "world" in r]
    assert len(loss) == 1, records
    return loss[0], worlds


def test_no_sync_bn_normalises_each_rank_alone(tmp_path):
    runs = {name: tmp_path / name for name in ("one", "sync", "plain")}
    run_ranks(1, MINIPSP + TINY + ["--out", str(runs["one"])], timeout=COMPILING_TIMEOUT)
    run_ranks(2, MINIPSP + TINY + ["--out", str(runs["sync"])], timeout=COMPILING_TIMEOUT)
    run_ranks(2, MINIPSP + TINY + ["--no-sync-bn", "--out", str(runs["plain"])], timeout=COMPILING_TIMEOUT)
    (one, _), (sync, sync_world), (plain, plain_world) = (first_loss_and_world(runs[n]) for n in runs)
    assert sync_world == [{"ranks": 2, "sync_bn": True}] and plain_world == [{"ranks": 2, "sync_bn": False}]
    np.testing.assert_allclose(sync, one, rtol=2e-5)
    assert abs(plain - one) > 1e-4 * abs(one), (plain, one)
