"""Chapter 06 (CUDA kernels): reference solutions. Open after you have tried; the check's message comes first.

Import with the simulator on (NUMBA_ENABLE_CUDASIM=1 before numba is imported) when there is no GPU.
"""

from numba import cuda, float64

from minipsp.course.ch06 import REDUCTION_THREADS


@cuda.jit
def relu_backward_kernel(x, dy, dx):
    """dx[i] = dy[i] if x[i] > 0 else 0; one thread per element."""
    i = cuda.grid(1)  # blockIdx.x * blockDim.x + threadIdx.x
    if i < x.size:  # the last block sticks out past the array
        dx[i] = dy[i] if x[i] > 0 else 0.0


@cuda.jit
def block_sum_kernel(x, block_sums):
    """block_sums[b] = sum(x[b*T:(b+1)*T]); T = blockDim.x = REDUCTION_THREADS, a power of two."""
    t = cuda.threadIdx.x
    i = cuda.grid(1)
    partial = cuda.shared.array(REDUCTION_THREADS, float64)  # one slot per thread of this block
    partial[t] = x[i] if i < x.size else 0.0  # past the end: 0, so the tree needs no special case
    cuda.syncthreads()
    stride = cuda.blockDim.x // 2
    while stride > 0:  # halve the active threads each round: log2(T) rounds
        if t < stride:
            partial[t] += partial[t + stride]
        cuda.syncthreads()  # every addition of this round lands before the next round reads it
        stride //= 2
    if t == 0:
        block_sums[cuda.blockIdx.x] = partial[0]


@cuda.jit
def transpose_kernel(x, y):
    """y[c, r] = x[r, c]; x (H, W), y (W, H); one thread per element of x on a 2-D grid."""
    c, r = cuda.grid(2)  # x index first: it walks along a row of x, so the reads coalesce
    if r < x.shape[0] and c < x.shape[1]:  # the grid sticks out on both axes
        y[c, r] = x[r, c]
