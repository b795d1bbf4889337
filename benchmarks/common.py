"""What every benchmark shares: a Case (the same work in minipsp and in PyTorch) and a fair timer.

A Case holds two callables that do the same forward + backward on the same inputs, one with
minipsp and one with PyTorch. Each returns its forward output as a NumPy array, so the table can
show the largest difference between them next to the times (a fast wrong answer is not a result).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from minipsp.cli import blas_info


@dataclass
class Case:
    name: str                               # e.g. "conv2d 3x3 dilation 2"
    shape: str                              # e.g. "8x64x64x64 -> 64"
    minipsp: Callable[[], np.ndarray]       # forward + backward with minipsp, returns the forward output
    torch: Callable[[], np.ndarray]         # the same with torch


def machine_line(torch_threads):
    """What the ratio depends on besides the code: cores, torch's threads, NumPy's BLAS and its kernels."""
    import os

    return f"cores {os.cpu_count()}, torch threads {torch_threads}, numpy BLAS: {blas_info()}"


def synchronize(device):
    """Wait for queued GPU work, so that the clock measures it."""
    if device == "cuda":
        import cupy
        import torch

        cupy.cuda.Device().synchronize()
        torch.cuda.synchronize()


def interleaved_times(fns, device="cpu", repeats=5, warmup=1, settle=0.03):
    """Wall times in seconds of each of `fns` ([[fns[0]'s], [fns[1]'s], ...]), timed in rounds (fns[0],
    fns[1], ..., then again), after `warmup` untimed rounds (JIT compilation, caches).

    Why rounds: a shared machine's speed drifts over seconds; timing one function's repeats and then
    the other's puts the drift into their ratio, alternating shares it out.
    Why untimed calls of the same function right before each timed one, for at least `settle` seconds
    (one call at least): two frameworks in one process each keep their own threads (torch's OpenMP
    team, NumPy's OpenBLAS, Numba's), and those go on spinning or waking for milliseconds after a
    call, on the cores the other's next call needs (GNU OpenMP's idle threads spin some 300,000 times
    before they sleep, ~10 ms). Measured 2026-12-03 (2 cores): a 1x1 conv 1024 -> 256 at 2 x 17 x 17,
    forward + backward, torch 8.4 ms alone, 14.4 ms right after a NumPy GEMM (10.3 ms even after a
    0.2 s sleep), minipsp 8.7 ms alone, 14.6 ms right after torch; batch norm's eval forward (a 3.5 ms
    pass) 5.2-8.7 ms right after torch, 3.5-3.7 ms right after itself. A user runs one framework, so
    each timed call follows calls of its own."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    synchronize(device)
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, record in zip(fns, times):
            settled = time.perf_counter() + settle
            while settle > 0:
                fn()
                synchronize(device)
                if time.perf_counter() >= settled:
                    break
            start = time.perf_counter()
            fn()
            synchronize(device)
            record.append(time.perf_counter() - start)
    return times


def interleaved_medians(fns, device="cpu", repeats=5, warmup=1, settle=0.03):
    """The median of each of interleaved_times(fns, ...)."""
    return [statistics.median(record) for record in interleaved_times(fns, device, repeats, warmup, settle)]


def median_time(fn, device="cpu", repeats=5, warmup=1):
    """Median wall time of fn() in seconds, after `warmup` untimed calls (JIT compilation, caches);
    one function, so its calls follow each other and need no settling call between them."""
    return interleaved_medians([fn], device, repeats, warmup, settle=0)[0]


def max_abs_error(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("nan")
    return float(np.max(np.abs(a - b))) if a.size else 0.0
