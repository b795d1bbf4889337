"""Shared test set-up.

Numba's CUDA simulator must be switched on before Numba is first imported, so it is done here,
at collection time. It runs every CUDA kernel line on NumPy arrays (each GPU thread as a Python
thread), so CI, which has no GPU, executes all of kernels/*/cuda.py on tiny shapes. On a machine
with a real GPU, run `MINIPSP_REAL_GPU=1 pytest -m gpu` to test the kernels on the device instead.
"""

import os

if os.environ.get("MINIPSP_REAL_GPU") != "1":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import signal  # noqa: E402

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# A shell starts a background job (`make test &`, `( ... & )`) with SIGINT ignored, and Python then
# leaves it ignored instead of raising KeyboardInterrupt: the in-process signal tests see no Ctrl-C,
# and every child a test interrupts inherits the ignored SIGINT through exec and runs until its
# timeout (found 2026-12-02: a CI launched that way failed 7 tests). The tests need Ctrl-C as a
# terminal gives it, so they get Python's own handler back. (minipsp itself keeps an inherited
# SIG_IGN on purpose: _minipsp_entry.py, as nohup expects.)
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

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


@pytest.fixture(autouse=True)
def signals_left_as_found(request):
    """Every test leaves Ctrl-C and SIGTERM as it found them: their handlers and the signal mask.

    A test that left SIGINT ignored (or blocked) would break every later test that interrupts a child
    process (children inherit both through exec) and every in-process signal test, far from the
    cause. This puts Ctrl-C and SIGTERM back after every test and warns, naming the test."""
    import threading
    import warnings

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    watched = (signal.SIGINT, signal.SIGTERM)
    handlers = {s: signal.getsignal(s) for s in watched}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    yield
    changed = [f"{signal.Signals(s).name} handler {handlers[s]!r} -> {signal.getsignal(s)!r}"
               for s in watched if signal.getsignal(s) != handlers[s]]
    now_mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    if now_mask != mask:
        changed.append(f"signal mask {sorted(mask)} -> {sorted(now_mask)}")
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    for s in watched:
        if handlers[s] is not None:
            signal.signal(s, handlers[s])
    if changed:
        warnings.warn(f"{request.node.nodeid} left signals changed (put back): " + "; ".join(changed),
                      stacklevel=2)
