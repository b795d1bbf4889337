"""The one error that asking for 'cuda' raises when it cannot work, for each thing that can be missing.

CuPy is replaced by stand-ins (none at all, a package that fails to import, a module whose CUDA
runtime reports no driver or no GPU), so every message is checked without a GPU.
"""

import sys
import types

import pytest

from minipsp import backend


@pytest.fixture
def fresh_backend(monkeypatch):
    """Forget what the backend found out about CuPy, and any imported cupy; all restored after the test.

    sys.modules["cupy"] is put back by hand, not by monkeypatch, so that a real CuPy (on a GPU
    machine) is the very same module object afterwards and a stand-in never outlives its test.
    """
    monkeypatch.setattr(backend, "_CUPY", None)
    monkeypatch.setattr(backend, "_CUPY_ERROR", None)
    monkeypatch.delenv("CUPY_CUDA_ARRAY_INTERFACE_EXPORT_VERSION", raising=False)
    missing = object()
    saved = sys.modules.pop("cupy", missing)
    yield monkeypatch
    sys.modules.pop("cupy", None)
    if saved is not missing:
        sys.modules["cupy"] = saved


def _fake_cupy(get_device_count):
    cupy = types.ModuleType("cupy")
    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=get_device_count))
    return cupy


def _message():
    with pytest.raises(RuntimeError) as info:
        backend.require_cuda()
    message = str(info.value)
    assert message.startswith("device 'cuda' requested but ")
    assert not backend.cuda_is_available()
    return message


def test_without_cupy_says_it_is_not_installed(fresh_backend):
    sys.modules["cupy"] = None  # makes `import cupy` fail as if not installed
    message = _message()
    assert "CuPy is not installed" in message
    assert "pip install -e '.[cuda12]'" in message and "'.[cuda13]'" in message


def test_cupy_that_does_not_import_says_why(fresh_backend, tmp_path):
    (tmp_path / "cupy").mkdir()
    (tmp_path / "cupy" / "__init__.py").write_text(
        "raise ImportError('CuPy failed to load libnvrtc.so.12: cannot open shared object file\\nmore detail')\n")
    fresh_backend.syspath_prepend(str(tmp_path))
    message = _message()
    assert "CuPy is installed but does not import (ImportError: CuPy failed to load libnvrtc.so.12" in message
    assert "more detail" not in message and "'.[cuda12]'" in message


class CUDARuntimeError(RuntimeError):
    """Named like CuPy's, which the message shows."""


def test_a_driver_too_old_is_named(fresh_backend):
    def no_driver():
        raise CUDARuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime")

    sys.modules["cupy"] = _fake_cupy(no_driver)
    message = _message()
    assert "CUDA is unusable: CUDARuntimeError: cudaErrorInsufficientDriver" in message
    assert "nvidia-smi" in message and "'.[cuda13]'" in message


def test_no_gpu_is_named(fresh_backend):
    sys.modules["cupy"] = _fake_cupy(lambda: 0)
    assert "no NVIDIA GPU was found" in _message()


def test_tensor_to_cuda_raises_the_same_error(fresh_backend):
    import minipsp

    sys.modules["cupy"] = None
    with pytest.raises(RuntimeError, match=r"device 'cuda' requested but CuPy is not installed"):
        minipsp.zeros(2).to("cuda")


def test_cupy_is_imported_with_no_stream_in_its_array_interface(fresh_backend, tmp_path):
    """So that Numba does not synchronise the GPU at each kernel launch; a value the user chose wins."""
    (tmp_path / "cupy").mkdir()
    (tmp_path / "cupy" / "__init__.py").write_text(
        "import os, types\n"
        "export_version = os.environ.get('CUPY_CUDA_ARRAY_INTERFACE_EXPORT_VERSION')\n"
        "cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))\n")
    fresh_backend.syspath_prepend(str(tmp_path))
    if not backend.cuda_is_available():  # on a real GPU Numba's own checks also run, and see no such GPU
        pytest.skip(f"the stand-in CuPy is not usable here: {backend._CUPY_ERROR}")
    assert backend.require_cuda().export_version == "2"

    fresh_backend.setattr(backend, "_CUPY", None)
    del sys.modules["cupy"]
    fresh_backend.setenv("CUPY_CUDA_ARRAY_INTERFACE_EXPORT_VERSION", "3")
    assert backend.require_cuda().export_version == "3"


def test_cupy_without_its_cuda_libraries_is_named(fresh_backend):
    """CuPy sees a GPU but its first op fails (no NVRTC / cuBLAS): one message, not an error mid-forward."""
    from numba import config

    def no_nvrtc(*args, **kwargs):
        raise RuntimeError("CompileException: cannot load libnvrtc.so.12")
    cupy = _fake_cupy(lambda: 1)
    cupy.ones = no_nvrtc
    sys.modules["cupy"] = cupy
    fresh_backend.setattr(config, "ENABLE_CUDASIM", False)   # the check is for real GPUs
    message = _message()
    assert "CuPy sees the GPU but cannot run on it (RuntimeError: CompileException: cannot load libnvrtc" in message
    assert "[ctk]" in message and "pip install -e '.[cuda12]'" in message
