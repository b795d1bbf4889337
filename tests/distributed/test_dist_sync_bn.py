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
