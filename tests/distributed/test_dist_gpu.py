"""The GPU path of minipsp.distributed on one rank (gpu-marked: needs a real GPU with CuPy; NCCL refuses two
ranks on one GPU, so multi-GPU runs stay untested until a machine with several GPUs is at hand)."""

import numpy as np
import pytest
from mpi_helpers import run_worker


@pytest.mark.gpu
def test_collectives_and_ddp_on_a_gpu_with_one_rank(tmp_path):
    run_worker(1, "gpu_world_of_one", tmp_path, timeout=300)
    result = np.load(tmp_path / "rank0.npz")
    assert int(result["device"]) == 0
    np.testing.assert_array_equal(result["x"], np.arange(6, dtype=np.float32))
    assert float(result["grad_gap"]) < 1e-12         # DDP over one rank: the plain model's gradients
