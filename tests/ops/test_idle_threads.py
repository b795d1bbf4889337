"""Idle worker threads sleep: the Numba threading layer minipsp asks for is the one that runs, and
OpenBLAS is told to put its threads to sleep after a GEMM (minipsp/blas_env.py).

kernels/__init__.py chooses 'workqueue' (idle workers sleep instead of spinning; on a shared 2-core
machine 'omp' made PSPNet-50's training step 2.6x torch's time instead of 1.2x). Numba re-reads its
config from the environment whenever a NUMBA_* variable changes, so a choice made only in
numba.config was once silently undone; this runs a fresh interpreter, as a user's program would,
and asks Numba which layer its first parallel launch actually loaded.
"""

import os
import subprocess
import sys

PROGRAM = """
import numpy as np
import numba
import minipsp
import minipsp.kernels as K

@numba.njit   # any compile (a cache miss, a new dtype) makes Numba re-read its config
def _fresh(x):
    return x + 1

_fresh(1)
K.variant("relu", np.zeros(1)).relu_forward(np.linspace(-1, 1, 1 << 16))
print(numba.threading_layer())
"""


def _run_fresh(program, **env_changes):
    """The last line a fresh interpreter prints, without our NUMBA_/OPENBLAS_ choices in its environment."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_THREADING_LAYER", "OPENBLAS_THREAD_TIMEOUT", "MINIPSP_KERNEL")}
    env.update(env_changes)
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def _layer_in_fresh_process(**env_changes):
    return _run_fresh(PROGRAM, **env_changes)


def test_workqueue_is_the_layer_that_runs():
    assert _layer_in_fresh_process() == "workqueue"


def test_the_users_choice_wins():
    # 'omp' ships with Numba's wheels (libgomp); the user's NUMBA_THREADING_LAYER is not overridden
    assert _layer_in_fresh_process(NUMBA_THREADING_LAYER="omp") == "omp"


BLAS_PROGRAM = """
import os
{first}
import minipsp
from minipsp import blas_env
from minipsp.cli import blas_info
print(os.environ["OPENBLAS_THREAD_TIMEOUT"], blas_env.IN_FORCE, "|", blas_info())
"""


def test_openblas_threads_sleep_when_minipsp_comes_first():
    timeout, in_force, _, line = _run_fresh(BLAS_PROGRAM.format(first="")).split(" ", 3)
    assert (timeout, in_force) == ("4", "True")
    assert "OPENBLAS_THREAD_TIMEOUT=4 (set by minipsp)" in line


def test_numpy_first_is_reported_not_hidden():
    # OpenBLAS read its environment when NumPy loaded it: too late to change, so say so
    timeout, in_force, _, line = _run_fresh(BLAS_PROGRAM.format(first="import numpy")).split(" ", 3)
    assert in_force == "False"
    assert "idle threads spin" in line and "NumPy was imported before minipsp" in line


def test_the_users_blas_timeout_wins():
    got = _run_fresh(BLAS_PROGRAM.format(first="import numpy"), OPENBLAS_THREAD_TIMEOUT="12")
    timeout, in_force, _, line = got.split(" ", 3)
    assert (timeout, in_force) == ("12", "True")
    assert "OPENBLAS_THREAD_TIMEOUT=12" in line and "set by minipsp" not in line
