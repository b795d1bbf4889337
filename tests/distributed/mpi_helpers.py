"""Launch a script on several ranks with the venv's mpiexec, always under a timeout.

Every distributed test runs its ranks as real processes (`mpiexec -n N python workers.py NAME OUT`),
as a user would; one thread per rank so that two ranks fit the 2 CPU cores of CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("mpi4py", reason="the distributed tests need mpi4py (pip install -e '.[mpi]')")

HERE = os.path.dirname(os.path.abspath(__file__))
WORKERS = os.path.join(HERE, "workers.py")
BIN = os.path.dirname(sys.executable)


def mpiexec() -> str:
    """The mpiexec next to this Python (the mpich wheel puts it in the venv), else the one on PATH."""
    path = os.path.join(BIN, "mpiexec")
    if os.path.exists(path):
        return path
    found = shutil.which("mpiexec")
    if found is None:
        raise RuntimeError("mpi4py is installed but no mpiexec was found next to Python or on PATH; "
                           "pip install mpich (or your MPI's launcher)")
    return found


# For the first runs of a module, which on a fresh clone compile Numba's kernels in each rank: measured with an
# empty cache on a quiet machine, up to 64 s (train) and 40 s (evaluation), so 300 and 240 s were only 5x;
# CI's shared 2-core machine can be that much slower. A hang still fails, at this limit.
COMPILING_TIMEOUT = 600


def rank_env(threads: int = 1) -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               NUMBA_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    return env


def run_ranks(n: int, args, timeout: float = 180, check: bool = True, cwd=None) -> subprocess.CompletedProcess:
    """mpiexec -n n <args...>; a list starting with a worker name runs tests/distributed/workers.py.

    Raises AssertionError with the output when check and the job fails; pytest fails (no hang) when the
    job outlives `timeout`."""
    command = [mpiexec(), "-n", str(n)] + list(args)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=rank_env(), cwd=cwd,
                              stdin=subprocess.DEVNULL)     # CI has no standard input; mpiexec would forward it
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(command)} did not end within {timeout} s:\n{exc.stdout}\n{exc.stderr}")
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed with status {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def run_worker(n: int, name: str, out, *extra, timeout: float = 180, check: bool = True):
    return run_ranks(n, [sys.executable, WORKERS, name, str(out), *map(str, extra)], timeout=timeout, check=check)
