"""Chapter 06 (CUDA kernels): the checks of its exercises. They launch the learner's own `@cuda.jit` kernel
on small NumPy arrays (under Numba's CUDA simulator, NUMBA_ENABLE_CUDASIM=1, when there is no GPU) and
compare what it wrote with NumPy.

6.1 relu_backward_kernel(x, dy, dx): one thread per element, dx = dy where x > 0, else 0 (as torch does at 0).
6.2 transpose_kernel(x, y): a 2-D grid, y[c, r] = x[r, c] for an (H, W) x and a (W, H) y, launched with
    blocks of GRID_BLOCK = (8, 8) threads, x along the columns of x.
6.3 block_sum_kernel(x, block_sums): block b sums x[b*T : (b+1)*T] with a tree reduction in shared memory,
    T = REDUCTION_THREADS threads per block; the elements past the end of x count as 0.
"""

from __future__ import annotations

import numpy as np

from minipsp.course import Mismatch, exercise, expect_close

ELEMENTWISE_THREADS = 128  # threads per block the check launches 6.1 with
REDUCTION_THREADS = 32  # threads per block of 6.3 (the size of its shared array: a compile-time constant)
GRID_BLOCK = (8, 8)  # (x, y) threads per block of 6.2


def _launch(kernel, blocks, threads, *arrays):
    """kernel[blocks, threads](*arrays), with the errors a learner meets turned into a message."""
    from numba import config, cuda

    if not (config.ENABLE_CUDASIM or cuda.is_available()):
        raise Mismatch("this check launches your kernel, which needs a GPU or Numba's CUDA simulator: set "
                       "os.environ['NUMBA_ENABLE_CUDASIM'] = '1' before numba is first imported (restart the kernel)")
    try:
        launcher = kernel[blocks, threads]
    except TypeError as error:
        if callable(kernel):
            kernel(*[a.copy() for a in arrays])  # a plain stub raises NotImplementedError here: "not solved yet"
        raise Mismatch(f"could not launch it as kernel[blocks, threads] ({error}): decorate the function with "
                       "@cuda.jit") from error
    try:
        launcher(*arrays)
    except IndexError as error:
        raise Mismatch(f"a thread indexed past the end of an array ({error}). The last block sticks out past "
                       "the array: check the index against the size before reading or writing") from error


@exercise("6.1", "an elementwise kernel: ReLU's backward", solution="relu_backward_kernel",
          hint="i = cuda.grid(1); if i < x.size: dx[i] = dy[i] if x[i] > 0 else 0.0 (ReLU's slope at 0 is taken "
               "as 0, as in PyTorch)")
def check_relu_backward(kernel):
    rng = np.random.default_rng(6)
    for size in (300, 128, 5):
        x = rng.standard_normal(size).astype(np.float32)
        x[::7] = 0.0  # exactly 0: the slope there is 0
        dy = rng.standard_normal(size).astype(np.float32)
        dx = np.full(size, np.nan, np.float32)  # an element no thread writes stays NaN
        blocks = (size + ELEMENTWISE_THREADS - 1) // ELEMENTWISE_THREADS
        _launch(kernel, blocks, ELEMENTWISE_THREADS, x, dy, dx)
        unwritten = np.isnan(dx)
        if unwritten.any():
            first = int(np.argmax(unwritten))
            raise Mismatch(f"with {blocks} blocks of {ELEMENTWISE_THREADS} threads on {size} elements, "
                           f"{int(unwritten.sum())} elements were never written (the first: {first}). Each thread "
                           "must take the global index cuda.grid(1) = blockIdx.x * blockDim.x + threadIdx.x, "
                           "not threadIdx.x alone")
        expect_close(f"dx on {size} elements ({blocks} blocks of {ELEMENTWISE_THREADS})", dx,
                     np.where(x > 0, dy, 0).astype(np.float32), rtol=0, atol=0)
    return (f"your kernel, launched with {ELEMENTWISE_THREADS} threads per block on 300, 128 and 5 elements, "
            "gives dy * (x > 0) everywhere, zeros of x included")


@exercise("6.2", "a 2-D grid: transpose", solution="transpose_kernel",
          hint="c, r = cuda.grid(2) (x first: the column of x), then if r < x.shape[0] and c < x.shape[1]: "
               "y[c, r] = x[r, c]. Check both bounds against x's own shape: the grid sticks out on both axes")
def check_transpose(kernel):
    rng = np.random.default_rng(63)
    bx, by = GRID_BLOCK
    for shape in ((13, 21), (8, 8), (3, 17)):
        x = rng.standard_normal(shape)
        y = np.full(shape[::-1], np.nan)
        grid = ((shape[1] + bx - 1) // bx, (shape[0] + by - 1) // by)  # x covers the columns, y the rows
        _launch(kernel, grid, GRID_BLOCK, x, y)
        if np.isnan(y).any():
            raise Mismatch(f"on a {shape} x, launched as [{grid}, {GRID_BLOCK}] (x over the {shape[1]} columns), "
                           f"{int(np.isnan(y).sum())} entries of y were never written. Every x[r, c] must land in "
                           "y[c, r], and with c, r = cuda.grid(2) the x index runs along the columns of x, the y "
                           "index along its rows")
        expect_close(f"y = transpose of a {shape} x", y, x.T, rtol=0, atol=0)
    return (f"your kernel, on 2-D grids of {GRID_BLOCK} blocks, transposes 13 x 21, 8 x 8 and 3 x 17 arrays "
            "exactly like x.T")


@exercise("6.3", "a shared-memory tree reduction", solution="block_sum_kernel",
          hint="partial = cuda.shared.array(T, float64); partial[t] = x[i] if i < x.size else 0.0; syncthreads; "
               "then stride = T // 2, T // 4, ..., 1: threads t < stride add partial[t + stride], and every thread "
               "syncs after each round; finally thread 0 writes partial[0] to block_sums[blockIdx.x]")
def check_block_sum(kernel):
    rng = np.random.default_rng(62)
    T = REDUCTION_THREADS
    for size in (100, T, 7):
        x = rng.integers(-50, 50, size).astype(np.float64)  # integers: every order of addition is exact
        blocks = (size + T - 1) // T
        block_sums = np.full(blocks, np.nan)
        _launch(kernel, blocks, T, x, block_sums)
        expected = np.array([x[b * T:(b + 1) * T].sum() for b in range(blocks)])
        if np.isnan(block_sums).any():
            raise Mismatch(f"block_sums {block_sums.tolist()}: some block wrote nothing; thread 0 of every block "
                           "writes block_sums[cuda.blockIdx.x]")
        expect_close(f"block_sums of {size} numbers in blocks of {T} (expected {expected.tolist()}, got "
                     f"{block_sums.tolist()})", block_sums, expected, rtol=0, atol=0)
    return (f"your kernel, {T} threads per block, sums 100, {T} and 7 numbers block by block exactly as "
            "NumPy does, the short last block included")
