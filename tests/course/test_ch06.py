"""Chapter 06's exercises: each check launches the kernel (under Numba's CUDA simulator, switched on by
tests/conftest.py), passes the reference solution and rejects plausible mistakes."""

from course_helpers import make_chapter_tests
from numba import cuda, float64

from minipsp.course.ch06 import REDUCTION_THREADS


@cuda.jit
def relu_backward_thread_index(x, dy, dx):  # threadIdx.x alone: every block redoes elements 0..127
    i = cuda.threadIdx.x
    if i < x.size:
        dx[i] = dy[i] if x[i] > 0 else 0.0


@cuda.jit
def relu_backward_no_bound(x, dy, dx):  # no `i < x.size`: the last block writes past the end
    i = cuda.grid(1)
    dx[i] = dy[i] if x[i] > 0 else 0.0


@cuda.jit
def relu_backward_at_zero(x, dy, dx):  # x >= 0: passes the gradient at exactly 0
    i = cuda.grid(1)
    if i < x.size:
        dx[i] = dy[i] if x[i] >= 0 else 0.0


def relu_backward_not_a_kernel(x, dy, dx):  # forgot @cuda.jit
    dx[:] = dy * (x > 0)


@cuda.jit
def block_sum_stops_early(x, block_sums):  # `while stride > 1`: the last round (stride 1) never runs
    t, i = cuda.threadIdx.x, cuda.grid(1)
    partial = cuda.shared.array(REDUCTION_THREADS, float64)
    partial[t] = x[i] if i < x.size else 0.0
    cuda.syncthreads()
    stride = cuda.blockDim.x // 2
    while stride > 1:
        if t < stride:
            partial[t] += partial[t + stride]
        cuda.syncthreads()
        stride //= 2
    if t == 0:
        block_sums[cuda.blockIdx.x] = partial[0]


@cuda.jit
def block_sum_no_padding(x, block_sums):  # threads past the end read x[i] anyway
    t, i = cuda.threadIdx.x, cuda.grid(1)
    partial = cuda.shared.array(REDUCTION_THREADS, float64)
    partial[t] = x[i]
    cuda.syncthreads()
    stride = cuda.blockDim.x // 2
    while stride > 0:
        if t < stride:
            partial[t] += partial[t + stride]
        cuda.syncthreads()
        stride //= 2
    if t == 0:
        block_sums[cuda.blockIdx.x] = partial[0]


@cuda.jit
def block_sum_global_index_in_shared(x, block_sums):  # partial[t + stride] with t the *global* index
    t, i = cuda.threadIdx.x, cuda.grid(1)
    partial = cuda.shared.array(REDUCTION_THREADS, float64)
    partial[t] = x[i] if i < x.size else 0.0
    cuda.syncthreads()
    stride = cuda.blockDim.x // 2
    while stride > 0:
        if i < stride:  # only block 0 has threads with i < stride: the other blocks never reduce
            partial[t] += partial[t + stride]
        cuda.syncthreads()
        stride //= 2
    if t == 0:
        block_sums[cuda.blockIdx.x] = partial[0]


@cuda.jit
def transpose_swapped_grid(x, y):  # r, c = cuda.grid(2): x taken as the row, but the grid's x covers the columns
    r, c = cuda.grid(2)
    if r < x.shape[0] and c < x.shape[1]:
        y[c, r] = x[r, c]


@cuda.jit
def transpose_one_bound(x, y):  # checks only the rows: the last column of blocks writes past the end
    c, r = cuda.grid(2)
    if r < x.shape[0]:
        y[c, r] = x[r, c]


@cuda.jit
def transpose_copies(x, y):  # y[r, c] = x[r, c] on a square view: not a transpose
    c, r = cuda.grid(2)
    if r < min(x.shape[0], y.shape[0]) and c < min(x.shape[1], y.shape[1]):
        y[r, c] = x[r, c]


MISTAKES = {
    "6.1": [relu_backward_thread_index, relu_backward_no_bound, relu_backward_at_zero, relu_backward_not_a_kernel],
    "6.2": [transpose_swapped_grid, transpose_one_bound, transpose_copies],
    "6.3": [block_sum_stops_early, block_sum_no_padding, block_sum_global_index_in_shared],
}

(test_solution_passes, test_mistake_rejected, test_stub_is_not_solved,
 test_chapter_has_exercises_and_mistakes) = make_chapter_tests(6, MISTAKES)
