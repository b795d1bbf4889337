"""Chapter 04's exercises: each check passes the reference solution and rejects plausible mistakes."""

import numpy as np
from course_helpers import make_chapter_tests

from minipsp.course import run


def max_backward_assigns(dy, indices, x_shape):
    """Fancy-index assignment: a pixel that won two windows keeps one gradient, not the sum."""
    N, C, H, W = x_shape
    dx = np.zeros((N * C, H * W))
    dx[np.arange(N * C)[:, None], indices.reshape(N * C, -1)] = dy.reshape(N * C, -1)
    return dx.reshape(x_shape)


def max_backward_first_plane_offsets(dy, indices, x_shape):
    """Treats the indices as flat over the whole array (forgets that they count within one plane)."""
    dx = np.zeros(int(np.prod(x_shape)))
    np.add.at(dx, indices.ravel(), dy.ravel())
    return dx.reshape(x_shape)


def adaptive_floor_end(x, output_size):
    """End rounded down: bins never overlap, and some rows are dropped or bins come out empty."""
    H, W = x.shape
    OH, OW = output_size
    rows = [(i * H // OH, max((i + 1) * H // OH, i * H // OH + 1)) for i in range(OH)]
    cols = [(j * W // OW, max((j + 1) * W // OW, j * W // OW + 1)) for j in range(OW)]
    return np.array([[x[r0:r1, c0:c1].mean() for c0, c1 in cols] for r0, r1 in rows])


def adaptive_as_fixed_kernel(x, output_size):
    """A fixed kernel and stride H // OH, as max_pool2d would do: right only when OH divides H."""
    H, W = x.shape
    OH, OW = output_size
    kh, kw = max(H // OH, 1), max(W // OW, 1)
    return np.array([[x[i * kh:(i + 1) * kh, j * kw:(j + 1) * kw].mean() if i * kh < H and j * kw < W else 0.0
                      for j in range(OW)] for i in range(OH)])


MISTAKES = {
    "4.1": [max_backward_assigns, max_backward_first_plane_offsets],
    "4.2": [adaptive_floor_end, adaptive_as_fixed_kernel],
}

(test_solution_passes, test_mistake_rejected, test_stub_is_not_solved,
 test_chapter_has_exercises_and_mistakes) = make_chapter_tests(4, MISTAKES)


def test_adaptive_message_gives_the_bin_edges():
    message = run("4.2", adaptive_floor_end).message
    assert "should be the mean of x[" in message and "ceil(" in message, message
