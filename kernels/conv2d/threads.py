"""One thread per group of images, each with a one-thread BLAS: Winograd's groups run side by side.

The other way to use two cores, and the one winograd.py takes on large filters, is two threads per
step: a prange loop over channels for each transform, then OpenBLAS's own threads for each of the
alpha^2 GEMMs. Every one of those ends in a barrier, and on few channels the pieces are small: a
64-channel layer's 36 GEMMs of 64 x 64 x T each wake and wait for a second thread, and its
transforms, loops over every pixel, wait for the slower half. Giving each thread whole groups of
images instead (their transforms, their 36 GEMMs, their output transform: no barrier until the
layer is done) measured 1.8-2.2x faster on 64 channels (65, 64 and 33 px maps, batch 8, forward +
dx + dw, 2 cores, 2026-12-02; benchmarks/README.md), even with 128, and slower from 512 channels,
where each group's GEMMs read the whole transformed filter and dw adds one dU per group.

That needs the BLAS to run one thread inside each of ours, without changing what the rest of the
process gets: OpenBLAS (0.3.27 and later, which NumPy's wheels ship) has a per-thread setting,
`openblas_set_num_threads_local`. Each worker sets it to 1 once, when it starts. Where that symbol
is not found (NumPy on MKL or Accelerate, an older OpenBLAS) `pool()` is None and winograd.py keeps
its two-threads-per-step path. The transforms the workers run are Numba functions compiled with
nogil=True, and np.matmul releases the GIL, so the workers do run at the same time.
"""

import ctypes
import threading
from concurrent.futures import ThreadPoolExecutor

import numba

_lock = threading.Lock()
_pool = None
_pool_made = False


def _openblas_local_setter():
    """openblas_set_num_threads_local from the OpenBLAS this process loaded, or None."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("openblas_set_num_threads_local", "scipy_openblas_set_num_threads_local64_"):
            setter = getattr(library, name, None)
            if setter is not None:
                setter.argtypes, setter.restype = [ctypes.c_int], ctypes.c_int
                return setter
    return None


def pool():
    """The worker pool (one worker per Numba thread), or None where it does not apply: one thread,
    or no per-thread BLAS setting. Made once, at the first call."""
    global _pool, _pool_made
    with _lock:
        if not _pool_made:
            _pool_made = True
            workers = numba.get_num_threads()
            setter = _openblas_local_setter() if workers > 1 else None
            if setter is not None:
                _pool = ThreadPoolExecutor(workers, thread_name_prefix="minipsp-conv",
                                           initializer=setter, initargs=(1,))
        return _pool
