"""Benchmarks: minipsp and PyTorch timed in the same run on the same inputs; the ratio is what counts."""

import minipsp  # noqa: F401  (before any NumPy import: OpenBLAS's idle threads then sleep, minipsp/blas_env.py)
