"""Chapter 12's exercises: each check passes the reference solution and rejects plausible mistakes."""

import numpy as np
from course_helpers import make_chapter_tests
from minipsp.kernels.conv2d import reference
from minipsp.kernels.conv2d.winograd import MATRICES

from minipsp.course import run
from minipsp.course.solutions import ch12 as solutions

BT2, G2, AT2 = (MATRICES[2][k] for k in ("BT", "G", "AT"))


# -- 12.1 ------------------------------------------------------------------------------------------
def f23_tiles_without_overlap(d, g):
    """Tiles step by 4 (their input length) instead of 2 (their output count): no overlap."""
    n_out = len(d) - 2
    T = (n_out + 1) // 2
    d = np.concatenate([d, np.zeros(4 * T - len(d))])
    m = np.stack([(G2 @ g) * (BT2 @ d[4 * t:4 * t + 4]) for t in range(T)])
    return m, (m @ AT2.T).reshape(-1)[:n_out]


def f23_tiles_halves_on_the_data(d, g):
    """The outputs are right, but the 1/2 of m2 and m3 moved to the output side (a division per tile)."""
    m, _ = solutions.f23_tiles(d, g)
    m = m * [1, 2, 2, 1]
    y = np.stack([m[:, 0] + (m[:, 1] + m[:, 2]) / 2, (m[:, 1] - m[:, 2]) / 2 - m[:, 3]], axis=1)
    return m, y.reshape(-1)[:len(d) - 2]


def f23_tiles_convolution(d, g):
    """The true convolution: g reversed."""
    return solutions.f23_tiles(d, g[::-1])


def f23_tiles_drops_odd_output(d, g):
    """Only whole tiles: the last output is lost when the output count is odd."""
    BT, G, AT = BT2, G2, AT2
    T = (len(d) - 2) // 2
    m = np.stack([(G @ g) * (BT @ d[2 * t:2 * t + 4]) for t in range(T)])
    return m, (m @ AT.T).reshape(-1)


# -- 12.2 ------------------------------------------------------------------------------------------
def tile_b_on_the_wrong_side(d, w, m):
    BT, G, AT = (MATRICES[m][k] for k in ("BT", "G", "AT"))
    U = np.einsum("ik,ockl,jl->ijoc", G, w, G)
    V = np.einsum("ki,ckl,lj->ijc", BT, d, BT)  # B d B^T
    return U, V, np.einsum("ik,klo,jl->oij", AT, np.einsum("ijoc,ijc->ijo", U, V), AT)


def tile_flipped_filter(d, w, m):
    return solutions.winograd_tile(d, w[:, :, ::-1, ::-1], m)


def tile_u_channels_swapped(d, w, m):
    """U laid out (alpha, alpha, C_in, C_out); Y computed consistently, so only the layout is off."""
    U, V, Y = solutions.winograd_tile(d, w, m)
    return U.transpose(0, 1, 3, 2), V, Y


def tile_output_transform_transposed(d, w, m):
    """Y[co] = A^T M A, but taken as A^T M^T A (the tile transposed)."""
    U, V, Y = solutions.winograd_tile(d, w, m)
    return U, V, Y.transpose(0, 2, 1)


# -- 12.3 ------------------------------------------------------------------------------------------
def phases_as_if_padding_were_dilation(x, w, padding, dilation):
    """r = a and padding 1 for every phase: right only when padding == dilation (PSPNet's case)."""
    d = dilation
    N, _, H, W = x.shape
    y = np.zeros((N, w.shape[0], H + 2 * padding - 2 * d, W + 2 * padding - 2 * d))
    for a in range(min(d, y.shape[2])):
        for b in range(min(d, y.shape[3])):
            part = reference.conv2d_forward(x[:, :, a::d, b::d], w, None, (1, 1), (1, 1), (1, 1))
            target = y[:, :, a::d, b::d]
            h, v = min(part.shape[2], target.shape[2]), min(part.shape[3], target.shape[3])
            target[:, :, :h, :v] = part[:, :, :h, :v]
    return y


def phases_offset_sign(x, w, padding, dilation):
    """divmod(a + p, d) instead of divmod(a - p, d): the wrong input phase whenever 2p is not a multiple of d."""
    p, d = padding, dilation
    N, _, H, W = x.shape
    y = np.zeros((N, w.shape[0], H + 2 * p - 2 * d, W + 2 * p - 2 * d))
    for a in range(min(d, y.shape[2])):
        for b in range(min(d, y.shape[3])):
            _, r = divmod(a + p, d)
            _, s = divmod(b + p, d)
            qh, _ = divmod(a - p, d)
            qw, _ = divmod(b - p, d)
            oha, owb = y[:, :, a::d, b::d].shape[2:]
            sub = np.pad(x[:, :, r::d, s::d], ((0, 0), (0, 0), (-qh, p + 2), (-qw, p + 2)))
            y[:, :, a::d, b::d] = reference.conv2d_forward(sub, w, None, (1, 1), (0, 0), (1, 1))[:, :, :oha, :owb]
    return y


def phases_still_dilated(x, w, padding, dilation):
    """The sub-images convolved with the dilation still on: the taps are then d*d pixels apart in x."""
    d = dilation
    N, _, H, W = x.shape
    y = np.zeros((N, w.shape[0], H + 2 * padding - 2 * d, W + 2 * padding - 2 * d))
    for a in range(min(d, y.shape[2])):
        for b in range(min(d, y.shape[3])):
            target = y[:, :, a::d, b::d]
            sub = np.pad(x[:, :, a::d, b::d], ((0, 0), (0, 0), (2 * d, 2 * d), (2 * d, 2 * d)))
            part = reference.conv2d_forward(sub, w, None, (1, 1), (0, 0), (d, d))
            target[...] = part[:, :, :target.shape[2], :target.shape[3]]
    return y


MISTAKES = {
    "12.1": [f23_tiles_without_overlap, f23_tiles_halves_on_the_data, f23_tiles_convolution,
             f23_tiles_drops_odd_output],
    "12.2": [tile_b_on_the_wrong_side, tile_flipped_filter, tile_u_channels_swapped,
             tile_output_transform_transposed],
    "12.3": [phases_as_if_padding_were_dilation, phases_offset_sign, phases_still_dilated],
}

(test_solution_passes, test_mistake_rejected, test_stub_is_not_solved,
 test_chapter_has_exercises_and_mistakes) = make_chapter_tests(12, MISTAKES)


def test_direct_correlation_is_not_winograd():
    """A direct correlation gives the right y but no tile products: the check asks for the tiles."""
    def direct(d, g):
        y = np.array([d[i:i + 3] @ g for i in range(len(d) - 2)])
        return np.zeros((len(y) // 2 + len(y) % 2, 4)), y
    message = run("12.1", direct).message
    assert message.startswith("✗") and "products of tile 0" in message, message


def test_named_mistakes():
    assert "Tile 1 reads d[2:6]" in run("12.1", f23_tiles_without_overlap).message
    assert "halves belong to the filter" in run("12.1", f23_tiles_halves_on_the_data).message
    assert "convolution (g reversed)" in run("12.1", f23_tiles_convolution).message
    assert "B^T on the wrong side" in run("12.2", tile_b_on_the_wrong_side).message
    assert "flipped filter" in run("12.2", tile_flipped_filter).message
    assert "(alpha, alpha, C_out, C_in)" in run("12.2", tile_u_channels_swapped).message
    assert "output phase" in run("12.3", phases_offset_sign).message


def test_phase_mistake_is_right_when_padding_equals_dilation():
    """The PSPNet shortcut is exact for p = d (the check's first case), so the check must reach the others."""
    x, w = np.random.default_rng(0).standard_normal((1, 2, 8, 8)), np.ones((2, 2, 3, 3))
    expected = reference.conv2d_forward(x, w, None, (1, 1), (2, 2), (2, 2))
    assert np.allclose(phases_as_if_padding_were_dilation(x, w, 2, 2), expected)
    assert not run("12.3", phases_as_if_padding_were_dilation).passed
