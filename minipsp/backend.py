"""Where arrays live: NumPy on the CPU, CuPy on an NVIDIA GPU.

The backend is chosen by the data, never by a global switch (the DeZero/Chainer idiom):
`get_array_module(x)` gives `xp`, either `numpy` or `cupy`, for glue code that is the same on both.
CuPy is optional; without it (or without a usable GPU) everything runs on NumPy and asking for
"cuda" raises one `RuntimeError` that says what is missing and how to install it.
"""

from __future__ import annotations

import os

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
    # Numba launches our kernels on the legacy default stream, which CuPy also uses unless told
    # otherwise (and which waits for, and is waited for by, any other blocking stream), so the work
    # is already in order. By default CuPy names its stream in __cuda_array_interface__ (version 3)
    # and Numba then synchronises that stream for every CuPy array passed to a kernel: the host
    # would wait for the GPU to drain before each launch, and the GPU would idle while Python
    # prepares the next one. Version 2 names no stream. CuPy reads this once, when it is imported;
    # a value the user set wins.
    os.environ.setdefault("CUPY_CUDA_ARRAY_INTERFACE_EXPORT_VERSION", "2")
    try:
        import cupy
    except ModuleNotFoundError as exc:
        if exc.name == "cupy":
            _CUPY_ERROR = f"CuPy is not installed; {INSTALL_HINT}"
        else:  # one of CuPy's own dependencies is missing
            _CUPY_ERROR = f"CuPy is installed but does not import ({_first_line(exc)}); {INSTALL_HINT}"
        return None
    except Exception as exc:  # CuPy is there but does not load: wrong CUDA build, missing libraries
        _CUPY_ERROR = f"CuPy is installed but does not import ({_first_line(exc)}); {INSTALL_HINT}"
        return None
    reason = _cuda_problem(cupy)
    if reason is not None:
        _CUPY_ERROR = f"CuPy is installed but CUDA is unusable: {reason}"
        return None
    _CUPY = cupy
    return cupy


def _first_line(exc):
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _cuda_problem(cupy):
    """Why CuPy or Numba cannot run on a GPU here, as a sentence, or None if both can."""
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver, or one too old for this CuPy's CUDA: the error says which
        return (f"{_first_line(exc)}. Check that `nvidia-smi` lists a GPU and that the extra you installed "
                f"matches its CUDA version; {INSTALL_HINT}")
    if count == 0:
        return "no NVIDIA GPU was found (cupy.cuda.runtime.getDeviceCount() is 0)"
    # The kernels themselves are compiled by Numba, which needs its own view of the driver and the
    # NVVM compiler (numba-cuda and its CUDA wheels, installed by the extras). Under the simulator
    # (NUMBA_ENABLE_CUDASIM=1) neither is used.
    from numba import config

    if config.ENABLE_CUDASIM:
        return None
    # CuPy can see the GPU and still fail at its first real op: its wheels load NVRTC (to compile
    # element-wise kernels) and cuBLAS (matrix products) from a CUDA Toolkit or from the NVIDIA wheels
    # that its [ctk] extra installs. Try both now, so a missing library is this one message instead of
    # an error from deep inside the first forward pass.
    try:
        a = cupy.ones((2, 2), dtype="float32")
        float(((a * 2) @ a).sum())
    except Exception as exc:
        return (f"CuPy sees the GPU but cannot run on it ({_first_line(exc)}): its CUDA libraries (NVRTC, "
                f"cuBLAS) are missing; the extras install them with cupy's [ctk]; {INSTALL_HINT}")
    try:
        from numba import cuda
        from numba.cuda.cudadrv import nvvm

        if not cuda.is_available():
            return f"CuPy sees the GPU but Numba does not (numba.cuda.is_available() is False); {INSTALL_HINT}"
        if not nvvm.is_available():
            return f"Numba cannot find libNVVM, which compiles minipsp's CUDA kernels; {INSTALL_HINT}"
    except Exception as exc:
        return f"Numba's CUDA support does not load ({_first_line(exc)}); {INSTALL_HINT}"
    return None


def cuda_is_available() -> bool:
    """True when CuPy imports and sees a usable GPU."""
    return _try_import_cupy() is not None


class CudaUnavailableError(RuntimeError):
    """Device 'cuda' was asked for but cannot be used; the message says what is missing and how to install it."""


def require_cuda():
    """Return the cupy module, or raise one clear error naming what is missing."""
    cupy = _try_import_cupy()
    if cupy is None:
        raise CudaUnavailableError(f"device 'cuda' requested but {_CUPY_ERROR}")
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
    if name == "cpu" or name == "cpu:0":        # torch's spelling of the one CPU device too
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
