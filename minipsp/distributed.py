"""Processes that train together: torch.distributed's names, on MPI (mpi4py).

    mpiexec -n 2 python train.py                  # two processes ("ranks"), one world
    import minipsp.distributed as dist
    dist.init_process_group()                     # MPI.COMM_WORLD; a world of 1 without mpiexec or mpi4py
    dist.get_rank(), dist.get_world_size()        # 0 or 1, 2
    dist.all_reduce(x)                            # in place: x becomes the sum of every rank's x
    dist.broadcast(x, src=0)                      # in place: x becomes rank 0's x

Collectives work in place on a NumPy array, a CuPy array or a Tensor (its .data), as
torch.distributed's do; every rank must call them in the same order with the same shapes and dtypes.

Engines: NumPy arrays go through MPI (mpi4py's buffer interface: no pickling, no copies for a
contiguous array). CuPy arrays go through NCCL (cupy.cuda.nccl, its unique id broadcast over MPI)
when CuPy has it, else through MPI with a copy to the host and back. Each rank uses GPU
`local_rank % device_count`, the local rank read from the launcher's environment (MPICH, Open MPI,
MVAPICH, Slurm) or from a communicator split by node.

Faults: once the world is bigger than 1, an exception that nobody catches on one rank prints its
traceback and one line naming the rank and the cause, then calls MPI Abort, which ends every rank
(never a hang with the others waiting in a collective). `abort(message)` does the same by hand.

`stats` counts what the collectives moved (calls, bytes, seconds), for the benchmarks.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

import numpy as np

from minipsp.backend import get_array_module, is_cupy_array

INSTALL_HINT = "pip install -e '.[mpi]' (mpi4py and MPICH's mpiexec; docs/distributed.md)"

# Environment variables in which launchers give each process its place. Without any of them the
# process was not started by a launcher: a world of 1, and MPI is not even initialised.
WORLD_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_SIZE")
LAUNCHER_VARS = WORLD_SIZE_VARS + ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID")
LOCAL_RANK_VARS = ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID",
                   "PMI_LOCAL_RANK")

OPS = ("sum", "max", "min", "avg")

_comm = None          # mpi4py's COMM_WORLD, or None for a world of 1 without MPI
_rank, _world, _local_rank = 0, 1, 0
_initialized = False
_backend = None       # "mpi" or "nccl" (for CuPy arrays; NumPy arrays always go through MPI)
_nccl_comm = None     # made on the first CuPy collective
stats = {"calls": 0, "bytes": 0, "seconds": 0.0}


def launched_world_size() -> int:
    """The number of processes the launcher started (1 when not launched by mpiexec or srun)."""
    for name in WORLD_SIZE_VARS:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1


def launched_by_mpi() -> bool:
    """True when a launcher (mpiexec, mpirun, srun) started this process."""
    return any(name in os.environ for name in LAUNCHER_VARS)


def init_process_group(backend: str | None = None) -> None:
    """Join the world: MPI.COMM_WORLD under a launcher (mpiexec, srun), else a world of 1 without MPI.

    backend: None (NCCL for CuPy arrays when CuPy has it, else MPI), "nccl" or "mpi"; the environment
    variable MINIPSP_DIST_BACKEND gives it when the argument does not (e.g. for `minipsp train`). Calling it
    again does nothing. Launched as several processes without mpi4py, it raises one RuntimeError
    that says what to install (each process would otherwise train alone, believing it is the world).
    """
    global _comm, _rank, _world, _local_rank, _initialized, _backend
    backend = backend or os.environ.get("MINIPSP_DIST_BACKEND") or None   # the trainer's way to choose
    if backend not in (None, "mpi", "nccl"):
        raise ValueError(f"init_process_group: backend must be None, 'mpi' or 'nccl'; got {backend!r}")
    if _initialized:
        return
    if not launched_by_mpi():
        _initialized, _backend = True, backend
        return
    try:
        from mpi4py import MPI
    except ModuleNotFoundError as exc:
        if exc.name != "mpi4py":
            raise
        launched = launched_world_size()
        if launched > 1:
            raise RuntimeError(f"launched as {launched} processes but mpi4py is not installed; "
                               f"{INSTALL_HINT}") from None
        _initialized, _backend = True, backend or "mpi"
        return
    _comm = MPI.COMM_WORLD
    _rank, _world = _comm.Get_rank(), _comm.Get_size()
    launched = launched_world_size()
    if launched > 1 and _world == 1:
        # each process would train alone, all of them believing they are the world
        _comm = None
        library = MPI.Get_library_version().split()[0]
        raise RuntimeError(f"launched as {launched} processes but MPI sees a world of 1: the mpiexec that started "
                           f"them belongs to another MPI than the one mpi4py uses ({library}); use that MPI's mpiexec "
                           f"(the venv's, {os.path.dirname(sys.executable)}/mpiexec, for the mpich wheel)")
    _local_rank = _find_local_rank(_comm)
    _backend = backend
    _initialized = True
    if _world > 1:
        sys.excepthook = _abort_on_uncaught


def _find_local_rank(comm) -> int:
    """This process's index among the processes of its node."""
    for name in LOCAL_RANK_VARS:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    from mpi4py import MPI

    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    local = node.Get_rank()
    node.Free()
    return local


def is_available() -> bool:
    """True when mpi4py imports (a world bigger than 1 is possible)."""
    try:
        import mpi4py  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


def describe_mpi() -> str:
    """mpi4py's and the MPI library's versions, and this world, or why there is no MPI (for `minipsp info`)."""
    try:
        import mpi4py
    except ModuleNotFoundError:
        return f"not available: mpi4py is not installed ({INSTALL_HINT})"
    rank, world = rank_and_world()
    where = f"rank {rank} of {world}" if _comm is not None else "not launched by mpiexec: a world of 1"
    if _comm is None:
        return f"mpi4py {mpi4py.__version__}; {where}"
    from mpi4py import MPI

    library = " ".join(MPI.Get_library_version().strip().splitlines()[0].split())
    return f"mpi4py {mpi4py.__version__}, {library}; {where}"


def is_initialized() -> bool:
    return _initialized


def _require_init(name):
    if not _initialized:
        raise RuntimeError(f"distributed.{name}: call minipsp.distributed.init_process_group() first")


def get_rank() -> int:
    _require_init("get_rank")
    return _rank


def get_world_size() -> int:
    _require_init("get_world_size")
    return _world


def get_local_rank() -> int:
    """The rank among the processes of this machine (which GPU to take)."""
    _require_init("get_local_rank")
    return _local_rank


def rank_and_world() -> tuple[int, int]:
    """(rank, world size), and (0, 1) before init_process_group: for code that runs either way."""
    return (_rank, _world) if _initialized else (0, 1)


def is_main_process() -> bool:
    """True on rank 0 (and without a world): the one that writes logs and checkpoints."""
    return rank_and_world()[0] == 0


def cuda_device_index(device_count: int) -> int:
    """The GPU this rank takes: local_rank % device_count."""
    if device_count < 1:
        raise ValueError(f"cuda_device_index: device_count must be >= 1; got {device_count}")
    return (_local_rank if _initialized else 0) % device_count


def use_local_gpu():
    """Make GPU local_rank % device_count the current device of CuPy and of Numba (which launches the
    kernels); return its index. Call it before anything is put on the GPU."""
    from numba import config

    from minipsp.backend import require_cuda

    cupy = require_cuda()
    index = cuda_device_index(cupy.cuda.runtime.getDeviceCount())
    cupy.cuda.Device(index).use()
    if not config.ENABLE_CUDASIM:
        from numba import cuda

        cuda.select_device(index)
    return index


# -- collectives -----------------------------------------------------------------------------------------
def barrier() -> None:
    """Wait until every rank has arrived."""
    _require_init("barrier")
    if _comm is not None:
        _comm.Barrier()


def _array(x, name):
    """The array behind x (a Tensor's .data), checked."""
    array = x.data if hasattr(x, "_node") else x
    if not (isinstance(array, np.ndarray) or is_cupy_array(array)):
        raise TypeError(f"distributed.{name}: expected a NumPy/CuPy array or a Tensor; got {type(x).__name__}")
    return array


def _check_op(op):
    if op not in OPS:
        raise ValueError(f"distributed.all_reduce: op must be one of {OPS}; got {op!r}")


class Work:
    """What an async_op=True collective returns: wait() finishes it (torch's Work)."""

    def __init__(self, finish=None):
        self._finish = finish

    def wait(self) -> bool:
        if self._finish is not None:
            start = time.perf_counter()
            self._finish()
            stats["seconds"] += time.perf_counter() - start
            self._finish = None
        return True

    def is_completed(self) -> bool:
        return self._finish is None


def all_reduce(x, op: str = "sum", async_op: bool = False):
    """x = op over ranks of x, in place on every rank. op: "sum", "max", "min" or "avg" (the mean).

    x: NumPy/CuPy array or Tensor. Returns None, or a Work to wait() on with async_op=True (the
    reduction may then run while the caller computes; x is final only after wait())."""
    _require_init("all_reduce")
    _check_op(op)
    array = _array(x, "all_reduce")
    if op == "avg" and array.dtype.kind != "f":
        raise TypeError(f"distributed.all_reduce: op='avg' needs a floating-point array; got {array.dtype}")
    if _comm is None:  # no MPI: a world of 1 (with MPI even a world of 1 runs the collective: tests the path)
        return Work() if async_op else None
    start = time.perf_counter()
    stats["calls"] += 1
    stats["bytes"] += array.nbytes
    if is_cupy_array(array) and _use_nccl():
        _nccl_all_reduce(array, op)
        finish = None
    elif is_cupy_array(array):
        host = array.get()          # host staging: a copy to the CPU, MPI, and back
        _mpi_all_reduce(host, op, async_op=False)()
        array.set(host)
        finish = None
    else:
        finish = _mpi_all_reduce(array, op, async_op)
    stats["seconds"] += time.perf_counter() - start
    work = Work(finish)
    if async_op:
        return work
    work.wait()
    return None


def _mpi_all_reduce(array, op, async_op):
    """Start an MPI Allreduce of a NumPy array in place; return the function that finishes it."""
    from mpi4py import MPI

    mpi_op = {"sum": MPI.SUM, "avg": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]
    # MPI reduces a contiguous buffer; a strided view is reduced through a copy and written back.
    buffer = array if array.flags.c_contiguous else np.ascontiguousarray(array)

    def finish(request=None):
        if request is not None:
            request.Wait()
        if op == "avg":
            buffer[...] /= _world
        if buffer is not array:
            array[...] = buffer

    if async_op:
        request = _comm.Iallreduce(MPI.IN_PLACE, buffer, op=mpi_op)
        return lambda: finish(request)
    _comm.Allreduce(MPI.IN_PLACE, buffer, op=mpi_op)
    return finish


def broadcast(x, src: int = 0) -> None:
    """x = rank src's x, in place on every rank. x: NumPy/CuPy array or Tensor."""
    _require_init("broadcast")
    if not 0 <= src < _world:
        raise ValueError(f"distributed.broadcast: src must be a rank in 0..{_world - 1}; got {src}")
    array = _array(x, "broadcast")
    if _comm is None:  # no MPI: a world of 1 (with MPI even a world of 1 runs the collective: tests the path)
        return
    stats["calls"] += 1
    stats["bytes"] += array.nbytes
    if is_cupy_array(array) and _use_nccl():
        buffer = array if array.flags.c_contiguous else array.copy()
        _nccl().bcast(buffer.data.ptr, buffer.size, _nccl_dtype(buffer.dtype), src, _stream())
        if buffer is not array:
            array[...] = buffer
        return
    host = array.get() if is_cupy_array(array) else array
    buffer = host if host.flags.c_contiguous else np.ascontiguousarray(host)
    _comm.Bcast(buffer, root=src)
    if buffer is not host:
        host[...] = buffer
    if is_cupy_array(array):
        array.set(host)


def all_gather(tensor_list, x) -> None:
    """tensor_list[r] = rank r's x, on every rank (torch's signature); all x have the same shape.

    tensor_list: a list of world-size arrays (or Tensors) of x's shape and dtype, filled in place."""
    _require_init("all_gather")
    array = _array(x, "all_gather")
    if len(tensor_list) != _world:
        raise ValueError(f"distributed.all_gather: tensor_list must hold world_size={_world} arrays; "
                         f"got {len(tensor_list)}")
    outs = [_array(t, "all_gather") for t in tensor_list]
    for out in outs:
        if out.shape != array.shape:
            raise ValueError(f"distributed.all_gather: every entry of tensor_list must have x's shape "
                             f"{tuple(array.shape)}; got {tuple(out.shape)}")
    if _comm is None:  # no MPI: a world of 1 (with MPI even a world of 1 runs the collective: tests the path)
        outs[0][...] = array
        return
    stats["calls"] += 1
    stats["bytes"] += array.nbytes * _world
    xp = get_array_module(array)
    host = array.get() if is_cupy_array(array) else np.ascontiguousarray(array)
    gathered = np.empty((_world,) + host.shape, host.dtype)
    _comm.Allgather(host, gathered)
    for r, out in enumerate(outs):
        out[...] = xp.asarray(gathered[r])


def any_rank(flag: bool) -> bool:
    """True on every rank when `flag` is True on at least one (e.g. "did a rank fail?")."""
    _require_init("any_rank")
    if _comm is None:
        return bool(flag)
    from mpi4py import MPI

    return bool(_comm.allreduce(int(bool(flag)), op=MPI.MAX))


# -- NCCL for CuPy arrays --------------------------------------------------------------------------------
def _use_nccl() -> bool:
    if _backend == "mpi":
        return False
    try:
        from cupy.cuda import nccl
    except ImportError:
        nccl = None
    available = nccl is not None and getattr(nccl, "available", False)
    if _backend == "nccl" and not available:
        raise RuntimeError("distributed: backend 'nccl' was asked for but CuPy has no NCCL; install it "
                           "(pip install nvidia-nccl-cu12) or pass backend='mpi'")
    return available


def _nccl():
    """The NCCL communicator of the world, made once: rank 0's unique id is broadcast over MPI."""
    global _nccl_comm
    if _nccl_comm is None:
        from cupy.cuda import nccl

        uid = nccl.get_unique_id() if _rank == 0 else None
        uid = _comm.bcast(uid, root=0)
        _nccl_comm = nccl.NcclCommunicator(_world, uid, _rank)
    return _nccl_comm


def _stream() -> int:
    import cupy

    return cupy.cuda.get_current_stream().ptr


def _nccl_dtype(dtype):
    from cupy.cuda import nccl

    table = {"float16": nccl.NCCL_FLOAT16, "float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64,
             "int32": nccl.NCCL_INT32, "int64": nccl.NCCL_INT64, "uint8": nccl.NCCL_UINT8}
    if str(dtype) not in table:
        raise TypeError(f"distributed: NCCL cannot reduce dtype {dtype}; expected one of {sorted(table)}")
    return table[str(dtype)]


def _nccl_all_reduce(array, op):
    from cupy.cuda import nccl

    nccl_op = {"sum": nccl.NCCL_SUM, "avg": nccl.NCCL_SUM, "max": nccl.NCCL_MAX, "min": nccl.NCCL_MIN}[op]
    buffer = array if array.flags.c_contiguous else array.copy()
    _nccl().allReduce(buffer.data.ptr, buffer.data.ptr, buffer.size, _nccl_dtype(buffer.dtype), nccl_op, _stream())
    if op == "avg":
        buffer /= _world
    if buffer is not array:
        array[...] = buffer


def all_gather_object(obj) -> list:
    """[rank 0's obj, rank 1's obj, ...] on every rank (pickled: for small things like RNG states)."""
    _require_init("all_gather_object")
    return [obj] if _comm is None else _comm.allgather(obj)


def average(values) -> list[float]:
    """The mean over ranks of a few Python numbers (e.g. this step's losses); themselves in a world of 1."""
    _require_init("average")
    array = np.asarray(values, dtype=np.float64).reshape(-1).copy()
    all_reduce(array, op="avg")
    return [float(v) for v in array]


# -- faults ----------------------------------------------------------------------------------------------
def describe_rank() -> str:
    """'rank 1 of 2' (for messages), or '' in a world of 1."""
    rank, world = rank_and_world()
    return f"rank {rank} of {world}" if world > 1 else ""


def labelled(message: str) -> str:
    """'[rank 1 of 2] message' in a world bigger than 1, the message alone otherwise."""
    where = describe_rank()
    return f"[{where}] {message}" if where else message


def run_main(main, *args) -> int:
    """Run a program's main(*args) -> exit status as one rank of the world (or alone, without a launcher).

    In a world bigger than 1 a rank that fails ends every rank: a non-zero status through MPI Abort
    with that status (main has printed its one-line error, see `labelled`), an exception through the
    excepthook that init_process_group installs. No rank is left waiting in a collective."""
    try:
        init_process_group()
    except RuntimeError as exc:           # launched as N processes without mpi4py
        print(f"minipsp: error: {exc}", file=sys.stderr)
        return 2
    status = main(*args)
    if status and _comm is not None and _world > 1:
        _abort_world(int(status))
    return status


def abort(message: str, code: int = 1) -> None:
    """Print one line naming this rank and the cause, then end every rank (MPI Abort, exit status code).

    In a world of 1 it prints the line and exits with `code`."""
    print(labelled(message), file=sys.stderr, flush=True)
    if _comm is not None and _world > 1:
        _abort_world(code)
    sys.exit(code)


# mpiexec forwards a rank's output asynchronously, and MPI Abort tears the job down at once: 2-3 times in ~60
# runs here (2 ranks under a loaded machine, a NaN stop and a bad image) the job ended with the right status
# and no output at all, neither the rank's line nor MPICH's own (0 in 210 runs later, 120 of them with this
# pause, so rare and load-dependent; the cause is the launcher's, not proven). The pause after the flush gives
# the launcher time to forward the line before the abort.
ABORT_GRACE_S = 0.5


def _abort_world(code: int) -> None:
    """Flush this rank's output, give the launcher ABORT_GRACE_S to forward it, then MPI Abort (every rank)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):      # a closed or broken stream: nothing more to forward
            pass
    time.sleep(ABORT_GRACE_S)
    _comm.Abort(code)


def _abort_on_uncaught(kind, value, tb):
    """sys.excepthook once the world is bigger than 1: the traceback, one line, MPI Abort."""
    traceback.print_exception(kind, value, tb, file=sys.stderr)
    first = str(value).strip().splitlines()
    abort(f"minipsp: {kind.__name__}: {first[0] if first else ''} (aborting all {_world} ranks)", 1)
