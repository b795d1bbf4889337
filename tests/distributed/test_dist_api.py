"""minipsp.distributed and DDP in one process (a world of 1, no launcher): torch's semantics, clear errors."""

import numpy as np
import pytest

import minipsp
import minipsp.distributed as dist
import minipsp.nn as nn
from minipsp.nn.parallel import DistributedDataParallel


@pytest.fixture(autouse=True)
def world_of_one():
    dist.init_process_group()
    assert dist.get_world_size() == 1 and dist.get_rank() == 0


def test_collectives_in_a_world_of_one_leave_the_data():
    x = np.arange(4.0)
    dist.all_reduce(x)
    dist.broadcast(x, src=0)
    t = minipsp.tensor(np.ones(3))
    assert dist.all_reduce(t, op="avg", async_op=True).wait()
    out = [np.zeros(4)]
    dist.all_gather(out, x)
    np.testing.assert_array_equal(out[0], np.arange(4.0))
    np.testing.assert_array_equal(t.data, np.ones(3))
    assert dist.average([1.5, 2.0]) == [1.5, 2.0] and dist.all_gather_object("a") == ["a"]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="op must be one of"):
        dist.all_reduce(np.zeros(2), op="mean")
    with pytest.raises(TypeError, match="NumPy/CuPy array or a Tensor; got list"):
        dist.all_reduce([1.0, 2.0])
    with pytest.raises(ValueError, match="src must be a rank in 0..0; got 1"):
        dist.broadcast(np.zeros(2), src=1)
    with pytest.raises(ValueError, match="world_size=1"):
        dist.all_gather([np.zeros(2), np.zeros(2)], np.zeros(2))
    with pytest.raises(TypeError, match="op='avg' needs a floating-point array"):
        dist.all_reduce(np.zeros(2, np.int64), op="avg")
    with pytest.raises(ValueError, match="backend must be"):
        dist.init_process_group(backend="gloo")
    with pytest.raises(TypeError, match="must be a minipsp.nn.Module"):
        DistributedDataParallel(object())
    with pytest.raises(ValueError, match="process_group=None"):
        nn.SyncBatchNorm(3, process_group="group")


def test_ddp_passes_the_module_through_and_buckets_by_size():
    minipsp.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3))
    model = DistributedDataParallel(net, bucket_cap_mb=0.001)      # 1 kB buckets: several
    assert list(model.state_dict()) == list(net.state_dict())     # plain keys, no "module."
    assert [id(p) for p in model.parameters()] == [id(p) for p in net.parameters()]
    assert len(model.buckets) > 1 and sum(map(len, model.buckets)) == len(list(net.parameters()))
    model.eval()
    assert not net.training and not net[1].training
    x = minipsp.tensor(np.random.default_rng(0).normal(size=(2, 3, 7, 7)).astype(np.float32))
    model.train()
    model(x).sum().backward()
    grads = [p.grad.copy() for p in net.parameters()]
    net.zero_grad()
    net(x).sum().backward()                                       # the same without DDP: a world of 1 averages 1
    for g, p in zip(grads, net.parameters()):
        np.testing.assert_allclose(g, p.grad, rtol=1e-6, atol=1e-7)


def test_convert_sync_batchnorm_keeps_parameters_order_and_keys():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU(), nn.Sequential(nn.BatchNorm2d(4)))
    params, keys = [id(p) for p in net.parameters()], list(net.state_dict())
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(net)
    assert converted is net and isinstance(net[1], nn.SyncBatchNorm) and isinstance(net[3][0], nn.SyncBatchNorm)
    assert [id(p) for p in net.parameters()] == params and list(net.state_dict()) == keys
    assert [type(m).__name__ for m in net] == ["Conv2d", "SyncBatchNorm", "ReLU", "Sequential"]
    x = minipsp.tensor(np.random.default_rng(1).normal(size=(2, 4)).astype(np.float32))
    assert net[3][0](x).shape == (2, 4)                           # 2-D input, as torch's SyncBatchNorm takes


def test_launched_as_several_processes_without_mpi4py_is_one_line(tmp_path):
    """As if mpiexec -n 2 had started `minipsp` in an environment without mpi4py."""
    import os
    import subprocess
    import sys

    blocker = tmp_path / "mpi4py.py"             # an mpi4py that does not import, first on the path
    blocker.write_text("raise ModuleNotFoundError(\"No module named 'mpi4py'\", name='mpi4py')\n")
    env = dict(os.environ, PMI_SIZE="2", PMI_RANK="0", PYTHONPATH=f"{tmp_path}{os.pathsep}{os.getcwd()}")
    done = subprocess.run([sys.executable, "-c", "import sys; from minipsp.cli import main; sys.exit(main(['info']))"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "launched as 2 processes but mpi4py is not installed" in lines[0]
    assert "pip install -e '.[mpi]'" in lines[0]


def test_started_by_another_mpis_launcher_is_refused():
    """Open MPI's mpirun starting processes whose mpi4py uses MPICH: each would see a world of 1 and train alone."""
    import os
    import subprocess
    import sys

    pytest.importorskip("mpi4py")
    env = dict(os.environ, OMPI_COMM_WORLD_SIZE="2", OMPI_COMM_WORLD_RANK="0")
    done = subprocess.run([sys.executable, "-c", "import sys; from minipsp.cli import main; sys.exit(main(['info']))"],
                          capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert "launched as 2 processes but MPI sees a world of 1" in done.stderr.splitlines()[-1]
