"""Which dtypes the float kernels take, and the one error every op gives for any other.

minipsp's kernels compute in float32 (the default) or float64 (the gradient checks). Integers and
booleans would run through the same loops and silently give wrong answers (int8 wraps around:
100 * 100 * 27 -> -80; a bool convolution is an OR of ANDs), and Numba has no float16 arithmetic,
so each op checks its floating-point inputs here and names the dtype it got.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FLOAT_DTYPES", "check_float"]

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_float(op, argument, dtype):
    """Raise a TypeError naming `op`, `argument` and `dtype` unless dtype is float32 or float64."""
    dtype = np.dtype(dtype)
    if dtype in FLOAT_DTYPES:
        return
    if dtype == np.float16:
        raise TypeError(f"{op}: {argument} has dtype float16, which minipsp does not support (its kernels "
                        "compute in float32 or float64); convert it with .float()")
    raise TypeError(f"{op}: {argument} must be floating point (float32 or float64); got dtype {dtype} "
                    "(convert it with .float())")
