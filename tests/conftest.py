"""Shared test set-up.

Numba's CUDA simulator must be switched on before Numba is first imported, so it is done here,
at collection time. It runs every CUDA kernel line on NumPy arrays (each GPU thread as a Python
thread), so CI, which has no GPU, executes all of kernels/*/cuda.py on tiny shapes. On a machine
with a real GPU, run `MINIPSP_REAL_GPU=1 pytest -m gpu` to test the kernels on the device instead.
"""

import os

if os.environ.get("MINIPSP_REAL_GPU") != "1":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# Deadlines off: the first call of a Numba kernel compiles it, which takes seconds.
settings.register_profile(
    "ci", max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("thorough", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def real_gpu_available():
    if os.environ.get("MINIPSP_REAL_GPU") != "1":
        return False
    from minipsp.backend import cuda_is_available

    return cuda_is_available()


def pytest_collection_modifyitems(config, items):
    if real_gpu_available():
        return
    skip = pytest.mark.skip(reason="needs a real GPU: run with MINIPSP_REAL_GPU=1 on a machine with CuPy and CUDA")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)
