"""The Numba threading layer minipsp asks for is the one that runs.

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


def _layer_in_fresh_process(**env_changes):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    env.update(env_changes)
    env.pop("MINIPSP_KERNEL", None)
    done = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_workqueue_is_the_layer_that_runs():
    assert _layer_in_fresh_process() == "workqueue"


def test_the_users_choice_wins():
    # 'omp' ships with Numba's wheels (libgomp); the user's NUMBA_THREADING_LAYER is not overridden
    assert _layer_in_fresh_process(NUMBA_THREADING_LAYER="omp") == "omp"
