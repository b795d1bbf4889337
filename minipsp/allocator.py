"""Host memory: keep freed NumPy buffers in the process instead of handing them back to the kernel.

A training step makes and drops hundreds of large arrays (activations, gradients, Winograd's
transformed tiles, im2col's columns: 1-40 MB each). glibc's malloc serves every block above its
mmap threshold (128 KB, rising to at most 32 MB as blocks are freed) with a fresh `mmap`, and
`munmap`s it on free; the heap's free top is trimmed back to the kernel above 128 KB. Each such
block's pages then fault in again on first touch, and the kernel zeroes every one. Measured on a
PSPNet-18 step (batch 8, 129 px, 2 cores, 2026-12-02, benchmarks/README.md): 8,800-10,200 page
faults and 0.9-2.6 s of system time per step, wall 2.9-4.3 s; with the settings below, 0 faults
and 0.03-0.05 s after the first steps, wall 1.6-2.0 s.

configure() sets, through `mallopt` (glibc only):
    M_MMAP_THRESHOLD  2 GB - 1   blocks up to this size come from the heap, and are reused
    M_TRIM_THRESHOLD  1 GB       the heap's free top is kept (up to this much)
The cost: a process keeps the memory of its largest step until it exits (its peak does not grow:
freed blocks are reused). PyTorch's CPU tuning guide gives the same advice for the same reason (use
jemalloc or tcmalloc, which keep memory); TensorFlow and oneDNN keep their own pools.

It runs once, when minipsp is imported. MINIPSP_MALLOC=system leaves malloc as it is (for a
program that must give memory back, or to measure the difference). It is process-wide: a torch
in the same process gets the same behaviour (benchmarks/README.md measures both with it).
"""

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 2**31 - 1
TRIM_THRESHOLD = 1 << 30
CHOICES = ("keep", "system")

_configured = None


def mode():
    """MINIPSP_MALLOC's value ('keep' when unset), checked."""
    value = os.environ.get("MINIPSP_MALLOC", "keep")
    if value not in CHOICES:
        raise ValueError(f"MINIPSP_MALLOC must be one of {CHOICES}; got {value!r}")
    return value


def configure():
    """Apply the settings above once; True if glibc took them, False where they do not apply
    (MINIPSP_MALLOC=system, not Linux, or a libc without mallopt such as musl's)."""
    global _configured
    if _configured is None:
        _configured = mode() == "keep" and _mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) \
            and _mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return _configured


def _mallopt(parameter, value):
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(parameter, value) == 1
