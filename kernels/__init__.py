"""minipsp.kernels: arrays in, arrays out. No autograd, no classes, nothing imported from minipsp.

One sub-package per op family (conv2d, batch_norm, ...), each with the same functions in three
variants, as three modules with the same function names, arguments and results:

    reference.py   plain NumPy: the readable definition, never optimised
    cpu.py         Numba @njit (parallel where it pays), compiled once and cached
    cuda.py        Numba @cuda.jit on CuPy arrays (through __cuda_array_interface__)

`variant(family, array)` picks the module for an array: `cuda` for a CuPy array, otherwise the CPU
variant in force, `cpu` by default. `use("reference")` switches the CPU variant inside a `with`
block (for teaching and tests); the environment variable MINIPSP_KERNEL=reference does the same
for a whole process (to bisect a wrong answer down to one variant).

Legend used in every docstring:
    N batch, C channels (C_in, C_out for convolution), H, W spatial size (OH, OW of the output),
    K classes, S adaptive-pooling bins (output size), KH, KW kernel size.
"""

from __future__ import annotations

import contextlib
import importlib
import os

CPU_VARIANTS = ("reference", "cpu")
VARIANTS = ("reference", "cpu", "cuda")

_cpu_variant = os.environ.get("MINIPSP_KERNEL", "cpu")
if _cpu_variant not in CPU_VARIANTS:
    raise ValueError(f"MINIPSP_KERNEL must be one of {CPU_VARIANTS}; got {_cpu_variant!r}")

# Numba's default 'omp' threading layer keeps its idle workers spinning between parallel regions;
# on a busy machine (here: 2 cores shared with other jobs) that costs ~8 ms per kernel launch, and
# a PSPNet-18 training step makes ~300 launches, most of them on small feature maps. The
# 'workqueue' layer puts idle workers to sleep: ~0.05 ms per launch. It must be chosen before the
# first parallel launch; NUMBA_THREADING_LAYER set by the user still wins.
# It is set as the environment variable, not only as numba.config.THREADING_LAYER: Numba re-reads
# its whole config from the environment at its next compile once a NUMBA_* variable has changed
# (the one set just below does; any cache miss or new dtype compiles), and a config-only setting
# was silently reset to the default there -- until 2026-12-02 the kernels ran on 'omp' while this
# comment said otherwise (PSPNet-50's step: 2.6x torch on 'omp', 1.2x on 'workqueue', same run).
# tests/ops/test_idle_threads.py holds it.
if "NUMBA_THREADING_LAYER" not in os.environ:
    os.environ["NUMBA_THREADING_LAYER"] = "workqueue"
    import numba

    numba.config.THREADING_LAYER = "workqueue"

# Numba synchronises the stream a CuPy array names in its __cuda_array_interface__ before every
# launch that takes it: the host would wait for the GPU to drain before each kernel. minipsp.backend
# asks CuPy for interface version 2 (no stream named), but CuPy reads that only when it is first
# imported, so a program that imported CuPy before minipsp still exports version 3. Our kernels
# and CuPy's work share the legacy default stream, which orders them already, so the sync is only a
# stall: turn it off whatever the import order. (A user who runs minipsp inside a non-blocking
# cupy.cuda.Stream would need it; minipsp does not support that.) A value the user set wins.
if "NUMBA_CUDA_ARRAY_INTERFACE_SYNC" not in os.environ:
    os.environ["NUMBA_CUDA_ARRAY_INTERFACE_SYNC"] = "0"    # for a numba.cuda not yet imported
    import numba

    numba.config.CUDA_ARRAY_INTERFACE_SYNC = False          # for one already imported


def cpu_variant() -> str:
    """The CPU variant in force: 'cpu' (Numba) or 'reference' (NumPy)."""
    return _cpu_variant


@contextlib.contextmanager
def use(name: str):
    """Run the CPU kernels of the `with` block as `name` ('reference' or 'cpu')."""
    global _cpu_variant
    if name not in CPU_VARIANTS:
        raise ValueError(f"kernels.use: variant must be one of {CPU_VARIANTS}; got {name!r}")
    previous = _cpu_variant
    _cpu_variant = name
    try:
        yield
    finally:
        _cpu_variant = previous


def load(family: str, name: str):
    """The module minipsp.kernels.<family>.<name>, imported once."""
    if name not in VARIANTS:
        raise ValueError(f"kernel variant must be one of {VARIANTS}; got {name!r}")
    return importlib.import_module(f"{__name__}.{family}.{name}")


def variant(family: str, array):
    """The kernel module of `family` that runs on `array`: cuda for CuPy, else the CPU variant."""
    on_gpu = type(array).__module__.startswith("cupy")
    return load(family, "cuda" if on_gpu else _cpu_variant)


def array_module(array):
    """numpy, or cupy for a CuPy array (imported only then, so CPU-only machines never need CuPy).

    The kernels' launchers allocate their outputs with it, so that they run on CuPy arrays on a GPU
    and on NumPy arrays under Numba's CUDA simulator.
    """
    if type(array).__module__.startswith("cupy"):
        import cupy

        return cupy
    import numpy

    return numpy
