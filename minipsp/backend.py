"""Where arrays live: NumPy on the CPU, CuPy on an NVIDIA GPU.

The backend is chosen by the data, never by a global switch (the DeZero/Chainer idiom):
`get_array_module(x)` gives `xp`, either `numpy` or `cupy`, for glue code that is the same on both.
CuPy is optional; without it (or without a usable GPU) everything runs on NumPy and asking for
"cuda" raises one `RuntimeError` that says what is missing and how to install it.
"""

from __future__ import annotations

import numpy as np

_CUPY = None          # the cupy module once imported successfully
_CUPY_ERROR = None    # why CUDA cannot be used, as a sentence, or None if not yet checked

INSTALL_HINT = (
    "install the GPU extra matching your driver's CUDA version (`nvidia-smi` shows it, top right): "
    "pip install -e '.[cuda12]' or pip install -e '.[cuda13]'"
)


def _try_import_cupy():
    """Import CuPy once; remember the module or the reason it is unusable."""
    global _CUPY, _CUPY_ERROR
    if _CUPY is not None or _CUPY_ERROR is not None:
        return _CUPY
    try:
        import cupy
    except ImportError:
        _CUPY_ERROR = f"CuPy is not installed; {INSTALL_HINT}"
        return None
    try:
        ok = cupy.cuda.is_available()
    except Exception as exc:  # a broken driver raises rather than returning False
        ok, reason = False, f"{type(exc).__name__}: {exc}"
    else:
        reason = "no NVIDIA GPU or driver was found (cupy.cuda.is_available() is False)"
    if not ok:
        _CUPY_ERROR = f"CuPy is installed but CUDA is unusable: {reason}"
        return None
    _CUPY = cupy
    return cupy


def cuda_is_available() -> bool:
    """True when CuPy imports and sees a usable GPU."""
    return _try_import_cupy() is not None


def require_cuda():
    """Return the cupy module, or raise one clear error naming what is missing."""
    cupy = _try_import_cupy()
    if cupy is None:
        raise RuntimeError(f"device 'cuda' requested but {_CUPY_ERROR}")
    return cupy


def is_cupy_array(x) -> bool:
    """True for a CuPy ndarray, checked without importing CuPy."""
    return type(x).__module__.startswith("cupy")


def get_array_module(x):
    """`numpy` for NumPy arrays (and scalars), `cupy` for CuPy arrays."""
    if is_cupy_array(x):
        import cupy

        return cupy
    return np


def device_of(x) -> str:
    """'cuda' for a CuPy array, 'cpu' otherwise."""
    return "cuda" if is_cupy_array(x) else "cpu"


def normalize_device(device) -> str:
    """Accept 'cpu', 'cuda', 'cuda:0' (only one GPU is used); refuse anything else."""
    name = str(device)
    if name == "cpu":
        return "cpu"
    if name == "cuda" or name == "cuda:0":
        return "cuda"
    raise ValueError(f"device must be 'cpu' or 'cuda'; got {device!r}")


def to_device(array, device):
    """Copy `array` to `device` ('cpu' or 'cuda'); return it unchanged if it is there already."""
    device = normalize_device(device)
    if device == "cpu":
        return array.get() if is_cupy_array(array) else array
    cupy = require_cuda()
    return array if is_cupy_array(array) else cupy.asarray(array)


def to_numpy(array) -> np.ndarray:
    """A NumPy view or copy of any array (CuPy arrays are copied to the host)."""
    return array.get() if is_cupy_array(array) else np.asarray(array)
