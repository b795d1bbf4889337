"""SyncBatchNorm across 2 ranks: unequal shards (3 images and 1) == BatchNorm2d on the 4 (test 3), and its
backward against central differences of the global loss, shapes drawn by Hypothesis (test 4)."""

import numpy as np
import pytest
from mpi_helpers import run_worker


@pytest.fixture(scope="module")
def unequal(tmp_path_factory):
    out = tmp_path_factory.mktemp("sync_bn")
    run_worker(2, "sync_bn_unequal", out, timeout=180)
    return [dict(np.load(out / f"rank{r}.npz")) for r in (0, 1)]


@pytest.mark.parametrize("momentum", ["m", "cumulative"])
def test_unequal_shards_equal_batch_norm_on_the_whole_batch(unequal, momentum):
    for rank, result in enumerate(unequal):
        for name in ("y", "dx", "dweight", "dbias", "running_mean", "running_var", "num_batches_tracked"):
            got, want = result[f"{momentum}_{name}"], result[f"{momentum}_{name}_ref"]
            assert got.shape == want.shape, (rank, name)
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-10, err_msg=f"rank {rank}: {name}")
    assert unequal[0][f"{momentum}_y"].shape[0] == 3 and unequal[1][f"{momentum}_y"].shape[0] == 1
    np.testing.assert_array_equal(unequal[0][f"{momentum}_running_var"], unequal[1][f"{momentum}_running_var"])


def test_backward_gradchecked_across_ranks(tmp_path):
    run_worker(2, "sync_bn_gradcheck", tmp_path, 12, timeout=240)
    result = np.load(tmp_path / "rank0.npz")
    assert len(result["checked"]) >= 6                 # examples that ran (not skipped as too small)
    assert (result["checked"] < 1e-6).all()
    assert len(set(result["counts"].tolist())) > 1     # different global batch sizes were drawn


SYNC_BN_ALONE = """
import sys
import numpy as np
import minipsp
import minipsp.distributed as dist
from minipsp.nn.sync_batch_norm import SyncBatchNorm

# no init_process_group and no DDP: SyncBatchNorm must still find the world (not normalise each rank alone)
from mpi4py import MPI

rank = MPI.COMM_WORLD.Get_rank()
x = np.arange(2 * 2 * 3, dtype=np.float64).reshape(2, 2, 3) ** 1.5      # rank r takes image r
bn = SyncBatchNorm(2, momentum=1.0).double()
bn(minipsp.tensor(x[rank:rank + 1]))
calls = dist.stats["calls"]
bn.eval()
y = bn(minipsp.tensor(x[rank:rank + 1]))                               # running statistics, no collective
np.savez(f"{sys.argv[1]}/rank{rank}.npz", mean=bn.running_mean.data, var=bn.running_var.data, y=y.data,
         eval_calls=dist.stats["calls"] - calls, train_calls=calls)
"""


def test_sync_bn_finds_the_world_and_eval_mode_does_not_communicate(tmp_path):
    import sys

    from mpi_helpers import run_ranks

    run_ranks(2, [sys.executable, "-c", SYNC_BN_ALONE, str(tmp_path)], timeout=120)
    x = np.arange(2 * 2 * 3, dtype=np.float64).reshape(2, 2, 3) ** 1.5
    mean, var = x.mean(axis=(0, 2)), x.var(axis=(0, 2), ddof=1)           # momentum 1: the global batch's, unbiased
    for rank in (0, 1):
        r = np.load(tmp_path / f"rank{rank}.npz")
        np.testing.assert_allclose(r["mean"], mean, rtol=1e-12)
        np.testing.assert_allclose(r["var"], var, rtol=1e-12)
        assert int(r["train_calls"]) >= 1 and int(r["eval_calls"]) == 0
        expected = (x[rank] - mean[:, None]) / np.sqrt(var[:, None] + 1e-5)
        np.testing.assert_allclose(r["y"][0], expected, rtol=1e-12, atol=1e-12)



SYNC_BN_LOW_RANK = """
import sys
import numpy as np
import minipsp
import minipsp.nn as nn
from minipsp.nn.sync_batch_norm import SyncBatchNorm
from mpi4py import MPI

rank = MPI.COMM_WORLD.Get_rank()
mine = slice(0, 3) if rank == 0 else slice(3, 4)          # unequal shards: 3 samples and 1
gaps = {}
for shape in [(4, 3), (4, 3, 5)]:                          # (N, C) and (N, C, L), as torch's SyncBatchNorm takes
    x = np.random.default_rng(len(shape)).normal(2.0, 3.0, shape)
    dy = np.random.default_rng(9).normal(size=shape)
    whole = minipsp.tensor(x.reshape(4, 3, -1, 1), requires_grad=True)   # BatchNorm2d on the 4, as (N, C, L, 1)
    ref = nn.BatchNorm2d(3).double()
    y = ref(whole)
    (y * minipsp.tensor(dy.reshape(whole.shape))).sum().backward()
    xs = minipsp.tensor(x[mine], requires_grad=True)
    sync = SyncBatchNorm(3).double()
    ys = sync(xs)
    (ys * minipsp.tensor(dy[mine])).sum().backward()
    gaps[f"{len(shape)}d"] = max(np.abs(ys.data - y.data[mine].reshape(ys.shape)).max(),
                                 np.abs(xs.grad - whole.grad[mine].reshape(xs.shape)).max(),
                                 np.abs(sync.running_var.data - ref.running_var.data).max(),
                                 np.abs(sync.running_mean.data - ref.running_mean.data).max())
np.savez(f"{sys.argv[1]}/rank{rank}.npz", **gaps)
"""


def test_sync_bn_takes_2d_and_3d_inputs(tmp_path):
    import sys

    from mpi_helpers import run_ranks

    run_ranks(2, [sys.executable, "-c", SYNC_BN_LOW_RANK, str(tmp_path)], timeout=120)
    for rank in (0, 1):
        gaps = dict(np.load(tmp_path / f"rank{rank}.npz"))
        assert sorted(gaps) == ["2d", "3d"]
        for name, gap in gaps.items():
            assert float(gap) < 1e-10, (rank, name, float(gap))
