"""One image per worker thread, each with a one-thread BLAS: Winograd's images run side by side.

The other way to use two cores, and the one winograd.py takes on large filters and small maps, is two
threads per step: a prange loop over channels for each transform, then OpenBLAS's own threads for
each of the alpha^2 GEMMs. Every one of those ends in a barrier, and on few channels the pieces are
small: a 64-channel layer's 36 GEMMs of 64 x 64 x T each wake and wait for a second thread, and its
transforms wait for the slower half. Giving each thread whole images instead (their transforms,
their 36 GEMMs, their output transform: no barrier until the layer is done) measured, on 2 cores
on 2026-12-02 (winograd.py's THREADED_* constants give the details): 8 x 64 x 64 x 64 dilation 2,
forward + dx + dw, 45 -> 25 ms; in a PSPNet-18 step the 64-channel layers at 65 and 33 px 1.1-1.8x
faster; 17 px maps and batch 2 slower (so winograd.py keeps them on the other path).

That needs the BLAS to run one thread inside each of ours. OpenBLAS's thread count is one number
for the whole process (its `openblas_set_num_threads_local`, despite the name, sets that same number
in the pthreads builds NumPy ships: a worker's call left the main thread's GEMMs on one thread, which
is how we found out). So `one_blas_thread()` sets it to 1 around the workers' part of a call and puts
back what it was; the main thread only waits meanwhile, so no other GEMM of ours sees the change.
Where the setter is not found (NumPy on MKL or Accelerate) `pool()` is None and winograd.py keeps its
two-threads-per-step path. The transforms the workers run are Numba functions compiled with
nogil=True, and np.matmul releases the GIL, so the workers do run at the same time.
"""

import contextlib
import ctypes
import threading
from concurrent.futures import ThreadPoolExecutor

import numba

_lock = threading.Lock()
_pool = None
_pool_made = False
_blas = None
_workers = 0


def _openblas_thread_count():
    """(get, set) of the OpenBLAS this process loaded (its process-wide thread count), or None."""
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
        for get_name, set_name in (("openblas_get_num_threads", "openblas_set_num_threads"),
                                   ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_")):
            get, set_ = getattr(library, get_name, None), getattr(library, set_name, None)
            if get is not None and set_ is not None:
                get.argtypes, get.restype = [], ctypes.c_int
                set_.argtypes, set_.restype = [ctypes.c_int], None
                return get, set_
    return None


def pool():
    """The worker pool (one worker per Numba thread), or None where it does not apply: one thread,
    or no OpenBLAS thread setting found. Made once, at the first call."""
    global _pool, _pool_made, _blas, _workers
    with _lock:
        if not _pool_made:
            _pool_made = True
            workers = numba.get_num_threads()
            _blas = _openblas_thread_count() if workers > 1 else None
            if _blas is not None:
                _pool = ThreadPoolExecutor(workers, thread_name_prefix="minipsp-conv")
                _workers = workers
        return _pool


def workers():
    """How many worker threads pool() has (0 without a pool)."""
    pool()
    return _workers


@contextlib.contextmanager
def one_blas_thread():
    """OpenBLAS on one thread inside the block (for the workers' GEMMs), as it was after it."""
    get, set_ = _blas
    previous = get()
    set_(1)
    try:
        yield
    finally:
        set_(previous)
