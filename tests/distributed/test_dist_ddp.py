"""DDP + SyncBatchNorm on 2 ranks x 2 images == one process x 4 images with BatchNorm2d (tests 1 and 2).

Three SGD steps with momentum and weight decay in float64, rank 1 starting from other weights (the
broadcast at wrap time must replace them). Without SyncBatchNorm each rank normalises its 2 images by
their own statistics, and the same run gives other losses and weights: that is why the sync is needed.
"""

import numpy as np
import pytest
from mpi_helpers import COMPILING_TIMEOUT, run_worker


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    run_worker(2, "ddp_equivalence", out, timeout=COMPILING_TIMEOUT)
    return [dict(np.load(out / f"rank{r}.npz")) for r in (0, 1)]


def weights(result, prefix):
    return {k.split("/", 1)[1]: v for k, v in result.items() if k.startswith(prefix + "/")}


def test_ddp_with_sync_bn_equals_one_process(ranks):
    for result in ranks:
        np.testing.assert_allclose(result["sync_losses"], result["ref_losses"], rtol=0, atol=1e-10)
        reference, synced = weights(result, "ref"), weights(result, "sync")
        assert synced.keys() == reference.keys() and any("running_var" in k for k in synced)
        for name in reference:     # every weight and running statistic (and num_batches_tracked)
            np.testing.assert_allclose(synced[name], reference[name], rtol=0, atol=1e-10, err_msg=name)
    # bit-identical on both ranks, and the world's own check agrees
    for name, value in weights(ranks[0], "sync").items():
        np.testing.assert_array_equal(value, weights(ranks[1], "sync")[name], err_msg=name)
    assert list(ranks[0]["sync_out_of_sync"]) == ["-"]
    assert int(ranks[0]["sync_buckets"]) == 1       # 9 parameter tensors, far under 25 MB: one Allreduce


def test_without_sync_bn_the_run_differs(ranks):
    result = ranks[0]
    assert np.abs(result["plain_losses"] - result["ref_losses"]).min() > 1e-4
    reference, plain = weights(result, "plain"), weights(result, "ref")
    assert np.abs(plain["0.weight"] - reference["0.weight"]).max() > 1e-4
    # the parameters stay in sync (DDP), only the per-rank running statistics drift apart
    drifted = [n for n in ranks[0]["plain_out_of_sync"] if n != "-"]
    assert drifted and all("running" in n for n in drifted)


def test_ddp_reduces_as_torch_does(tmp_path):
    """Rank r's d/dw is r + 1 (x = r + 1): the cases torch DDP defines, its numbers (gloo, 2 processes, the
    same model) written as the means they are: eval mode reduces (1.5); retain_graph reduces the first
    backward only (1.5, then 1.5 + x_r); accumulation reduces each backward (1.5 + 3); no_sync keeps x_r,
    then reduces x_r + 2 x_r (4.5); a parameter used on rank 1 alone gets (0 + 2) / 2; one never used, None."""
    run_worker(2, "ddp_semantics", tmp_path, timeout=120)
    for rank in (0, 1):
        r = dict(np.load(tmp_path / f"rank{rank}.npz"))
        x = rank + 1.0
        expected = {"eval": 1.5, "retain_first": 1.5, "retain_second": 1.5 + x, "accumulate": 1.5 + 3.0,
                    "no_sync_local": x, "no_sync": 4.5, "unused_extra": 1.0}
        for name, value in expected.items():
            np.testing.assert_array_equal(r[name], np.full(2, value), err_msg=f"rank {rank}: {name}")
        assert bool(r["never_used_is_none"])


def test_buckets_are_reduced_in_the_same_order_on_every_rank(tmp_path):
    """A bucket that one rank fills early and another only at the end of backward (an unused parameter)
    must not be paired with another bucket: a.grad = mean(1, 2), b.grad = (0 + 20) / 2."""
    run_worker(2, "ddp_bucket_order", tmp_path, timeout=120)
    for rank in (0, 1):
        r = dict(np.load(tmp_path / f"rank{rank}.npz"))
        assert int(r["buckets"]) == 2
        np.testing.assert_array_equal(r["a"], [1.5, 1.5], err_msg=f"rank {rank}")
        np.testing.assert_array_equal(r["b"], [10.0, 10.0], err_msg=f"rank {rank}")


def test_wrap_broadcasts_rank_0s_parameters_and_buffers(tmp_path):
    run_worker(2, "ddp_wrap_broadcast", tmp_path, timeout=120)
    zero, one = (dict(np.load(tmp_path / f"rank{r}.npz")) for r in (0, 1))
    names = [k.split("/", 1)[1] for k in zero if k.startswith("after/")]
    assert any("running_mean" in n for n in names) and any("num_batches_tracked" in n for n in names)
    for name in names:
        assert not np.array_equal(one[f"before/{name}"], zero[f"before/{name}"]), name   # they did differ
        np.testing.assert_array_equal(one[f"after/{name}"], zero[f"before/{name}"], err_msg=name)
        np.testing.assert_array_equal(zero[f"after/{name}"], zero[f"before/{name}"], err_msg=name)
