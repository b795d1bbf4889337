"""OpenBLAS's idle threads told to sleep at once, set before NumPy loads its BLAS.

After each GEMM, OpenBLAS keeps its worker threads spinning for 2^28 cycles (~0.1 s) in case another
GEMM follows. minipsp alternates GEMMs with its own parallel Numba loops (the Winograd transforms,
batch norm, im2col), which then share the cores with a thread that is only waiting: measured on 2
cores, a 512 x 512 GEMM followed by a 0.2 s sleep used 0.139 s of CPU, and a PSPNet-18 training step
(batch 8, 129 px) took 2.71-2.73 s against 2.39-2.44 s with OPENBLAS_THREAD_TIMEOUT=4 (2^4 cycles,
OpenBLAS's smallest), in alternating runs (docs/design-notes.md). The same is why kernels/__init__.py
picks Numba's 'workqueue' threading layer, whose idle workers sleep.

OpenBLAS reads the variable once, when the library is loaded, i.e. when NumPy is first imported, so
this module is imported first by minipsp/__init__.py. A program that imported NumPy before minipsp
keeps OpenBLAS's default; IN_FORCE says which, and `python -m minipsp info` prints it. A value the
user set wins.
"""

import os
import sys

TIMEOUT = "4"

_user_set = "OPENBLAS_THREAD_TIMEOUT" in os.environ
IN_FORCE = _user_set or "numpy" not in sys.modules
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", TIMEOUT)


def describe() -> str:
    """One line for blas_info(): how long OpenBLAS's idle threads spin."""
    value = os.environ["OPENBLAS_THREAD_TIMEOUT"]
    if not IN_FORCE:
        return "idle threads spin ~0.1 s (NumPy was imported before minipsp)"
    return f"OPENBLAS_THREAD_TIMEOUT={value}" + ("" if _user_set else " (set by minipsp)")
