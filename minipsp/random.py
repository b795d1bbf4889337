"""One seeded random generator per device, so dropout, shuffling and initialisation are reproducible.

`minipsp.manual_seed(seed)` reseeds both, as `torch.manual_seed` does. `get_rng_state()` and
`set_rng_state()` save and restore the CPU generator exactly (for resuming a run). Everything a PSPNet
training run draws comes from the CPU generator (initialisation, shuffling, and dropout2d's small
(N, C) masks, moved to the GPU when the input is there), so a resumed GPU run is exact too; only the
element-wise `dropout` on a GPU tensor draws from the GPU generator, whose state is not saved.
"""

from __future__ import annotations

import numpy as np

_cpu_rng = np.random.default_rng(0)
_cuda_rng = None
_seed = 0


SEED_RANGE = (-2**63, 2**64 - 1)   # torch.manual_seed's: a signed or an unsigned 64-bit integer


def manual_seed(seed: int) -> None:
    """Reseed the CPU (and, if used, the GPU) generator.

    seed: an int in [-2**63, 2**64 - 1], as torch takes it; a negative seed is its unsigned 64-bit
    twin (-1 is 2**64 - 1), as in torch, whose initial_seed() then reports seed % 2**64.
    """
    global _cpu_rng, _cuda_rng, _seed
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"manual_seed: seed must be an int; got {type(seed).__name__} {seed!r}")
    low, high = SEED_RANGE
    if not low <= seed <= high:
        raise ValueError(f"manual_seed: seed must be between -2**63 and 2**64 - 1 (a 64-bit integer, as torch "
                         f"takes it); got {seed}")
    _seed = int(seed) % 2**64
    _cpu_rng = np.random.default_rng(_seed)
    _cuda_rng = None  # recreated from the seed on first use


def get_rng(device: str = "cpu"):
    """The generator for `device`: a `numpy.random.Generator` or a `cupy.random.Generator`."""
    global _cuda_rng
    if device == "cpu":
        return _cpu_rng
    if _cuda_rng is None:
        import cupy

        _cuda_rng = cupy.random.default_rng(_seed)
    return _cuda_rng


def get_rng_state() -> dict:
    """The CPU generator's full state (a plain dict, picklable)."""
    return {"seed": _seed, "bit_generator": _cpu_rng.bit_generator.state}


def set_rng_state(state: dict) -> None:
    """Restore what `get_rng_state` returned."""
    global _seed
    _seed = state["seed"]
    _cpu_rng.bit_generator.state = state["bit_generator"]
