"""conv2d by Winograd F(2x2, 3x3) / F(4x4, 3x3) and space-to-batch dilation (kernels/conv2d/winograd.py).

- the transform matrices: 1-D F(m, 3) is exact (float64), and 2-D nests it;
- winograd == im2col == reference in float64, forward and backward, over Hypothesis-drawn shapes,
  paddings (0-3, per axis, also larger than the kernel), dilations (1-4 per axis) and odd sizes,
  with image groups and the parallel loops forced on;
- float64 gradient checks through F.conv2d with MINIPSP_CONV forced to each tile size;
- float32 error against the float64 reference on PSPNet's layer shapes, within each algorithm's bound;
- the dispatch table and MINIPSP_CONV; no im2col on the Winograd path;
- the whole-PSPNet torch parity check with each algorithm forced.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from minipsp.kernels.conv2d import algorithm, cpu, reference, winograd
from minipsp.kernels.conv2d import space_to_batch as stb
from minipsp.kernels.conv2d import winograd_gather as gather
from minipsp.kernels.conv2d import winograd_strips as strips

import minipsp
import minipsp.nn.functional as F

WINOGRAD = ["winograd2", "winograd4"]
LAYOUTS = ["tiles", "strips", "gather"]          # winograd.LAYOUT


@st.composite
def winograd_configs(draw, max_n=2, max_c=3, max_padding=3, max_dilation=4, max_extra=6):
    """N, C_in, C_out, H, W, padding, dilation (pairs) and a seed for a 3x3 stride-1 convolution."""
    padding = tuple(draw(st.integers(0, max_padding)) for _ in range(2))
    dilation = tuple(draw(st.integers(1, max_dilation)) for _ in range(2))
    H, W = (max(1, 2 * d + 1 - 2 * p) + draw(st.integers(0, max_extra)) for p, d in zip(padding, dilation))
    return dict(N=draw(st.integers(1, max_n)), C_in=draw(st.integers(1, max_c)), C_out=draw(st.integers(1, max_c)),
                H=H, W=W, padding=padding, dilation=dilation, seed=draw(st.integers(0, 2**16)))


def make_arrays(config, dtype=np.float64):
    rng = np.random.default_rng(config["seed"])
    x = rng.standard_normal((config["N"], config["C_in"], config["H"], config["W"])).astype(dtype)
    weight = rng.standard_normal((config["C_out"], config["C_in"], 3, 3)).astype(dtype)
    bias = rng.standard_normal(config["C_out"]).astype(dtype)
    return x, weight, bias


def out_shape(config):
    return (config["N"], config["C_out"], *(size + 2 * p - 2 * d for size, p, d in
                                           zip((config["H"], config["W"]), config["padding"], config["dilation"])))


# ---------------------------------------------------------------- the matrices

@pytest.mark.parametrize("m", [2, 4])
def test_1d_winograd_is_exact_correlation(m):
    """y = A^T [(G g) * (B^T d)] equals y[i] = sum_k g[k] d[i + k] (alpha multiplications instead of 3m)."""
    BT, G, AT = (winograd.MATRICES[m][name] for name in ("BT", "G", "AT"))
    assert BT.shape == (m + 2, m + 2) and G.shape == (m + 2, 3) and AT.shape == (m, m + 2)
    rng = np.random.default_rng(m)
    for _ in range(5):
        g, d = rng.standard_normal(3), rng.standard_normal(m + 2)
        expected = [g @ d[i:i + 3] for i in range(m)]
        np.testing.assert_allclose(AT @ ((G @ g) * (BT @ d)), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("m", [2, 4])
def test_2d_nesting_and_the_loops_match_the_matrices(m):
    """Y = A^T [(G g G^T) * (B^T d B)] A is the 2-D correlation, and the Numba loops compute exactly it."""
    BT, G, AT = (winograd.MATRICES[m][name] for name in ("BT", "G", "AT"))
    rng = np.random.default_rng(10 + m)
    d, g = rng.standard_normal((m + 2, m + 2)), rng.standard_normal((3, 3))
    expected = np.array([[np.sum(g * d[i:i + 3, j:j + 3]) for j in range(m)] for i in range(m)])
    Y = AT @ ((G @ g @ G.T) * (BT @ d @ BT.T)) @ AT.T
    np.testing.assert_allclose(Y, expected, rtol=1e-12, atol=1e-12)
    # one tile through the module: an (m+2) x (m+2) input without padding gives one m x m output tile
    U = winograd.transform_filter(g[None, None], m)
    np.testing.assert_allclose(U[:, 0, 0].reshape(m + 2, m + 2), G @ g @ G.T, rtol=1e-14, atol=1e-14)
    y = winograd.conv2d_forward(d[None, None], g[None, None], None, (0, 0), (1, 1), m)
    np.testing.assert_allclose(y[0, 0], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("m", [2, 4])
def test_the_flipped_filter_is_the_forward_transform_reordered(m):
    """G J = S P G (J reverses the filter): dx's kernel is the forward's U, planes reordered, signed, and
    the signs fold into the output transform as A^T S, which is A^T with its constants negated."""
    G, AT = winograd.MATRICES[m]["G"], winograd.MATRICES[m]["AT"]
    order, signs = winograd.FLIP_ORDER[m], np.array(winograd.FLIP_SIGNS[m], dtype=np.float64)
    np.testing.assert_array_equal(G[:, ::-1], signs[:, None] * G[list(order)])
    g = np.random.default_rng(m).standard_normal((3, 3))
    U, U_flipped = G @ g @ G.T, G @ g[::-1, ::-1] @ G.T
    np.testing.assert_allclose(U_flipped, np.outer(signs, signs) * U[np.ix_(order, order)], rtol=1e-14, atol=1e-14)
    k = winograd._output_constants(np.float64, m, flipped=True)
    loop_at = np.array([winograd._at4(*np.eye(6)[j], k) for j in range(6)]).T if m == 4 else AT
    np.testing.assert_array_equal(loop_at, AT * signs[None, :])


# ---------------------------------------------------------------- space to batch

@given(config=winograd_configs(max_padding=5))
def test_dilated_conv_is_undilated_convs_on_the_phases(config):
    """Each output phase y[a::d, b::d] is an undilated conv of one input phase, with that phase's own
    padding (phase_table): checked with the NumPy reference, padding the phase explicitly."""
    x, weight, _ = make_arrays(config)
    (ph, pw), (dh, dw) = config["padding"], config["dilation"]
    y = reference.conv2d_forward(x, weight, None, (1, 1), (ph, pw), (dh, dw))
    table, _ = stb.phase_table(config["H"], config["W"], y.shape[2], y.shape[3], (ph, pw), (dh, dw), m=2)
    covered = np.zeros(y.shape[2:], dtype=int)
    for row in table:
        r, s, qh, qw, a, b, oha, owb = (row[i] for i in (stb.R, stb.S, stb.QH, stb.QW, stb.A, stb.B, stb.OHA, stb.OWB))
        sub = x[:, :, r::dh, s::dw]
        # pad -q before, and enough after for oha x owb outputs (then crop what is not needed)
        before_h, before_w = max(0, -qh), max(0, -qw)
        start_h, start_w = max(0, qh), max(0, qw)
        after_h = max(0, start_h + oha + 2 - before_h - sub.shape[2])
        after_w = max(0, start_w + owb + 2 - before_w - sub.shape[3])
        padded = np.pad(sub, ((0, 0), (0, 0), (before_h, after_h), (before_w, after_w)))
        phase = reference.conv2d_forward(padded[:, :, start_h:, start_w:], weight, None, (1, 1), (0, 0), (1, 1))
        np.testing.assert_allclose(y[:, :, a::dh, b::dw], phase[:, :, :oha, :owb], rtol=1e-12, atol=1e-12)
        covered[a::dh, b::dw] += 1
    assert np.all(covered == 1)  # every output pixel in exactly one phase


def test_space_to_batch_round_trip():
    x = np.arange(2 * 3 * 7 * 9, dtype=np.float64).reshape(2, 3, 7, 9)
    phases = stb.space_to_batch(x, (2, 3))
    assert len(phases) == 6 and phases[0].shape == (2, 3, 4, 3) and phases[5].shape == (2, 3, 3, 3)
    np.testing.assert_array_equal(stb.batch_to_space(phases, x.shape, (2, 3)), x)


# ---------------------------------------------------------------- winograd == im2col == reference

@pytest.mark.parametrize("conv", WINOGRAD)
@given(config=winograd_configs(), with_bias=st.booleans(), grouped=st.booleans(),
       path=st.sampled_from(["serial", "parallel", "threaded"]), copied_dx_kernel=st.booleans(),
       layout=st.sampled_from(LAYOUTS))
def test_winograd_matches_im2col_and_reference(conv, config, with_bias, grouped, path, copied_dx_kernel, layout):
    """Every way a Winograd call can run: serial loops, prange loops + BLAS threads, one image per
    worker thread (threads.py; taken only with 2 or more images), each with groups of images or not,
    dx's kernel copied out of U or read from it plane by plane (FLIP_COPY_BYTES), the transforms tile
    by tile, by strips (winograd_strips.py) or on gathered tiles (winograd_gather.py), forced here
    whatever the map's width."""
    x, weight, bias = make_arrays(config)
    bias = bias if with_bias else None
    dy = np.random.default_rng(1).standard_normal(out_shape(config))
    hyper = (1, 1), config["padding"], config["dilation"]
    expected_y = reference.conv2d_forward(x, weight, bias, *hyper)
    expected_grads = reference.conv2d_backward(dy, x, weight, *hyper)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINIPSP_CONV", "im2col")
        im2col_y = cpu.conv2d_forward(x, weight, bias, *hyper)
        im2col_grads = cpu.conv2d_backward(dy, x, weight, *hyper)
        patch.setenv("MINIPSP_CONV", conv)
        if grouped:   # one image per GEMM batch
            patch.setattr(winograd, "TILES_BUDGET", 1)
        if not copied_dx_kernel:
            patch.setattr(winograd, "FLIP_COPY_BYTES", -1)
        patch.setattr(winograd, "LAYOUT", layout)
        if path != "serial":  # the prange loops, or the worker threads
            patch.setattr(winograd, "PARALLEL_MIN_SIZE", 0)
        if path != "threaded":
            patch.setattr(winograd, "THREADED_FILTER_BYTES", -1)
        else:
            patch.setattr(winograd, "THREADED_MIN_TILES", 0)
            patch.setattr(winograd, "THREADED_MIN_IMAGES_PER_WORKER", 1)
        y = cpu.conv2d_forward(x, weight, bias, *hyper)
        grads = cpu.conv2d_backward(dy, x, weight, *hyper)
    np.testing.assert_allclose(y, expected_y, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(im2col_y, expected_y, rtol=1e-10, atol=1e-10)
    for name, got, by_im2col, expected in zip(("dx", "dw", "db"), grads, im2col_grads, expected_grads):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10, err_msg=name)
        np.testing.assert_allclose(by_im2col, expected, rtol=1e-10, atol=1e-10, err_msg=name)


@pytest.mark.parametrize("conv", WINOGRAD)
@settings(max_examples=15)
@given(config=winograd_configs(max_extra=4), with_bias=st.booleans(), layout=st.sampled_from(LAYOUTS))
def test_winograd_gradcheck(conv, config, with_bias, layout):
    x, weight, bias = make_arrays(config)
    inputs = [minipsp.tensor(x, requires_grad=True), minipsp.tensor(weight, requires_grad=True)]
    if with_bias:
        inputs.append(minipsp.tensor(bias, requires_grad=True))

    def fn(x, weight, bias=None):
        return F.conv2d(x, weight, bias, padding=config["padding"], dilation=config["dilation"])

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINIPSP_CONV", conv)
        patch.setattr(winograd, "LAYOUT", layout)
        assert minipsp.gradcheck(fn, inputs)


def _strip_columns(by_tile, by_strip, N):
    """The column of each tile (in the per-tile numbering's order) in the strips' numbering."""
    columns = []
    for n in range(N):
        for p, row in enumerate(by_tile.table):
            tiles_h, tiles_w = row[stb.TILES_H], row[stb.TILES_W]
            base = n * by_strip.per_image + by_strip.table[p, stb.BASE]
            columns += [base + th * (tiles_w + 1) + tw for th in range(tiles_h) for tw in range(tiles_w)]
    return np.array(columns, dtype=np.int64)


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=20, deadline=None)
@given(config=winograd_configs(max_c=4, max_extra=14), parallel=st.booleans())
def test_strips_transform_like_the_tile_loops_bit_for_bit(m, dtype, config, parallel):
    """winograd_strips computes each transformed value as the same sum in the same order as the
    per-tile loops, so V (input), y (output) and Z (dw's) are equal exactly, not just close; the extra
    tile of each row of tiles has a finite V and a zero Z (dU = Z V^T must not pick anything up)."""
    x, _, _ = make_arrays(config, dtype)
    N, C, H, W = x.shape
    (OH, OW), dilation = out_shape(config)[2:], config["dilation"]
    alpha2, k = (m + 2) ** 2, winograd._constants(dtype)
    table, per_image = stb.phase_table(H, W, OH, OW, config["padding"], dilation, m)
    by_tile = winograd.Tiles(table, per_image, "tiles", None, None)
    strip_table, strip_tiles = strips.table(table)
    by_strip = winograd.Tiles(strip_table, strip_tiles, "strips", strips.sources(strip_table, H, W, dilation, m),
                              strips.targets(strip_table, dilation, m))
    real = _strip_columns(by_tile, by_strip, N)
    extra = np.setdiff1d(np.arange(N * by_strip.per_image), real)

    V = [winograd._planes(alpha2, C, N * tiles.per_image, dtype) for tiles in (by_tile, by_strip)]
    for planes, tiles in zip(V, (by_tile, by_strip)):
        winograd._input(x, planes, tiles, dilation, m, k, parallel)
    np.testing.assert_array_equal(V[1][:, :, real], V[0])
    assert np.isfinite(V[1]).all()

    rng = np.random.default_rng(config["seed"])
    M_tile = rng.standard_normal((alpha2, C, N * per_image)).astype(dtype)
    M = [winograd._planes(alpha2, C, N * tiles.per_image, dtype) for tiles in (by_tile, by_strip)]
    M[0][...] = M_tile
    M[1][...] = 7
    M[1][:, :, real] = M_tile
    y = [np.full((N, C, OH, OW), np.nan, dtype) for _ in range(2)]
    for planes, out, tiles in zip(M, y, (by_tile, by_strip)):
        winograd._output(planes, out, tiles, dilation, m, k, parallel)
    np.testing.assert_array_equal(y[1], y[0])            # every pixel written, the same values

    dy = rng.standard_normal((N, C, OH, OW)).astype(dtype)
    Z = [winograd._planes(alpha2, C, N * tiles.per_image, dtype) for tiles in (by_tile, by_strip)]
    for planes, tiles in zip(Z, (by_tile, by_strip)):
        winograd._grad(dy, planes, tiles, dilation, m, k, parallel)
    np.testing.assert_array_equal(Z[1][:, :, real], Z[0])
    assert np.all(Z[1][:, :, extra] == 0)


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=20, deadline=None)
@given(config=winograd_configs(max_c=4, max_extra=14), parallel=st.booleans())
def test_gathered_tiles_transform_like_the_tile_loops_bit_for_bit(m, dtype, config, parallel):
    """winograd_gather uses the per-tile numbering and the same sums in the same order: V, y and Z
    equal to the per-tile loops' exactly, with every pixel of y written."""
    x, _, _ = make_arrays(config, dtype)
    N, C, H, W = x.shape
    (OH, OW), dilation = out_shape(config)[2:], config["dilation"]
    alpha2, k = (m + 2) ** 2, winograd._constants(dtype)
    table, per_image = stb.phase_table(H, W, OH, OW, config["padding"], dilation, m)
    by_tile = winograd.Tiles(table, per_image, "tiles", None, None)
    by_gather = winograd.Tiles(table, per_image, "gather", gather.sources(table, per_image, H, W, dilation, m),
                               gather.targets(table, per_image, dilation, m))
    rng = np.random.default_rng(config["seed"])
    M = winograd._planes(alpha2, C, N * per_image, dtype)
    M[...] = rng.standard_normal(M.shape)
    dy = rng.standard_normal((N, C, OH, OW)).astype(dtype)
    results = []
    for tiles in (by_tile, by_gather):
        V, Z = (winograd._planes(alpha2, C, N * per_image, dtype) for _ in range(2))
        y = np.full((N, C, OH, OW), np.nan, dtype)
        winograd._input(x, V, tiles, dilation, m, k, parallel)
        winograd._output(M, y, tiles, dilation, m, k, parallel)
        winograd._grad(dy, Z, tiles, dilation, m, k, parallel)
        results.append((V, y, Z))
    for name, by_tiles, gathered in zip("VyZ", *results):
        np.testing.assert_array_equal(gathered, by_tiles, err_msg=name)
    assert not np.isnan(results[1][1]).any()


def test_strips_are_taken_on_wide_maps_only():
    """The extra tile per row costs 1/tiles_w of the GEMMs: strips from 32 tiles a row (STRIPS_MAX_WASTE),
    gathered tiles below; LAYOUT forces one."""
    wide = winograd._tiles(129, 129, 129, 129, (1, 1), (1, 1), 4)   # 33 tiles a row
    narrow = winograd._tiles(64, 64, 64, 64, (2, 2), (2, 2), 4)     # 32 px phases: 8 tiles a row
    assert wide.layout == "strips" and wide.per_image == 33 * 34
    assert narrow.layout == "gather" and narrow.per_image == 4 * 8 * 8
    for layout in LAYOUTS:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(winograd, "LAYOUT", layout)
            assert winograd._tiles(17, 17, 17, 17, (2, 2), (2, 2), 4).layout == layout
            assert winograd._tiles(64, 64, 64, 64, (2, 2), (2, 2), 4).layout == layout


@pytest.mark.parametrize("conv", WINOGRAD)
def test_winograd_path_makes_no_cols(conv, monkeypatch):
    """No im2col / col2im on the Winograd path (its memory is the transformed tiles, about 2x x)."""
    def forbidden(*args):
        raise AssertionError("im2col or col2im called on the Winograd path")

    monkeypatch.setattr(cpu, "_fill_cols", forbidden)
    monkeypatch.setattr(cpu, "_add_cols", forbidden)
    monkeypatch.setenv("MINIPSP_CONV", conv)
    rng = np.random.default_rng(0)
    x, weight = rng.standard_normal((2, 4, 9, 11)), rng.standard_normal((5, 4, 3, 3))
    y = cpu.conv2d_forward(x, weight, None, (1, 1), (2, 2), (2, 2))
    dx, dw, _ = cpu.conv2d_backward(np.ones_like(y), x, weight, (1, 1), (2, 2), (2, 2))
    np.testing.assert_allclose(y, reference.conv2d_forward(x, weight, None, (1, 1), (2, 2), (2, 2)), rtol=1e-10)


# ---------------------------------------------------------------- float32 accuracy on PSPNet's shapes

# (C_in, C_out, side, dilation) of PSPNet-18/50's 3x3 stride-1 convs at a 129-pixel crop (N = 1 here)
PSPNET_LAYERS = [(64, 64, 65, 1), (64, 64, 33, 1), (128, 128, 17, 1), (256, 256, 17, 2), (512, 512, 17, 4)]


def relative_error(got, truth):
    return float(np.abs(got - truth).max() / np.abs(truth).max())


@pytest.mark.parametrize("conv", ["im2col", *WINOGRAD])
@pytest.mark.parametrize("layer", PSPNET_LAYERS, ids=lambda layer: "x".join(map(str, layer)))
def test_float32_error_within_the_stated_bound(conv, layer, monkeypatch):
    C_in, C_out, side, d = layer
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, C_in, side, side))
    weight = rng.standard_normal((C_out, C_in, 3, 3)) * np.sqrt(2 / (9 * C_in))   # He init, as the models
    hyper = (1, 1), (d, d), (d, d)
    monkeypatch.setenv("MINIPSP_CONV", "im2col")
    y64 = cpu.conv2d_forward(x, weight, None, *hyper)
    dy = rng.standard_normal(y64.shape)
    dx64, dw64, _ = cpu.conv2d_backward(dy, x, weight, *hyper, needs_bias_grad=False)
    monkeypatch.setenv("MINIPSP_CONV", conv)
    x32, w32, dy32 = (a.astype(np.float32) for a in (x, weight, dy))
    y32 = cpu.conv2d_forward(x32, w32, None, *hyper)
    dx32, dw32, _ = cpu.conv2d_backward(dy32, x32, w32, *hyper, needs_bias_grad=False)
    bound = winograd.ERROR_BOUND["im2col" if conv == "im2col" else algorithm.tile_size(conv)]
    for name, got, truth in (("y", y32, y64), ("dx", dx32, dx64), ("dw", dw32, dw64)):
        assert got.dtype == np.float32
        error = relative_error(got, truth)
        assert error <= bound, f"{conv} {name}: max|err| / max|y| = {error:.2e} > {bound:.0e}"


# ---------------------------------------------------------------- the choice

def test_table_choices(monkeypatch):
    """The table's choices on PSPNet's shapes (batch 8, 129 and 65 px crops) and what stays im2col."""
    monkeypatch.delenv("MINIPSP_CONV", raising=False)

    def choose(C_in, C_out, side, kernel=3, stride=1, d=1, N=8):
        return algorithm.choose((N, C_in, side, side), (C_out, C_in, kernel, kernel), (stride, stride), (d, d), (d, d))

    for conv in ("auto", "fast"):                                    # fast: the same table now
        monkeypatch.setenv("MINIPSP_CONV", conv)
        assert choose(64, 64, 65) == ("winograd4", "winograd4")           # the stem, layer1 (waste 1.09)
        assert choose(256, 256, 17, d=2) == ("winograd4", "winograd4")    # layer3 at 129 px (waste 1.38)
        # layer4 at 129 px: F(4x4)'s U is 47 K elements per tile (> F4_MAX_FILTER_PER_TILE), F(2x2)
        assert choose(512, 512, 17, d=4) == ("winograd2", "winograd2")
        assert choose(512, 512, 17, d=4, N=32) == ("winograd4", "winograd4")   # enough tiles share it
        assert choose(128, 128, 17, N=2) == ("winograd4", "winograd4")    # PSPNet-50 at batch 2: layer2
        assert choose(256, 256, 17, d=2, N=2) == ("winograd2", "winograd2")  # and layer3
        assert choose(1024, 512, 9) == ("winograd2", "winograd2")         # the head at 65 px (waste 1.78)
        assert choose(512, 512, 9, d=4) == ("winograd2", "winograd2")     # layer4 at 65 px (waste 3.2)
        assert choose(64, 128, 64, stride=2) == ("im2col", "im2col")      # stride 2
        assert choose(256, 64, 64, kernel=1) == ("im2col", "im2col")      # 1x1
        assert choose(3, 64, 129) == ("im2col", "im2col")                 # 3 channels
    assert algorithm.waste_of_f4(17, 17, (1, 1), (1, 1)) == pytest.approx(400 / 289)
    assert algorithm.waste_of_f4(9, 9, (4, 4), (4, 4)) == pytest.approx(16 * 16 / 81)


@pytest.mark.parametrize("conv", ["auto", "fast"])
def test_small_maps_keep_im2col(conv, monkeypatch):
    """Fewer than MIN_OUTPUTS output pixels per call: im2col (make demo's 7 x 7 training maps, 9 x 9 eval)."""
    monkeypatch.setenv("MINIPSP_CONV", conv)

    def choose(N, C_in, C_out, side, d=1):
        return algorithm.choose((N, C_in, side, side), (C_out, C_in, 3, 3), (1, 1), (d, d), (d, d))

    assert choose(8, 512, 512, 7, d=4) == ("im2col", "im2col")          # 392 outputs
    assert choose(1, 1024, 512, 9) == ("im2col", "im2col")             # 81
    assert choose(2, 256, 256, 9, d=2) == ("im2col", "im2col")         # 162
    assert choose(8, 256, 256, 9, d=2)[0].startswith("winograd")       # 648
    assert choose(1, 64, 64, 33)[0].startswith("winograd")             # 1089
    assert 8 * 7 * 7 < algorithm.MIN_OUTPUTS <= 8 * 9 * 9


@pytest.mark.parametrize("value, expected", [("im2col", "im2col"), ("winograd", "winograd4"),
                                             ("winograd2", "winograd2"), ("winograd4", "winograd4")])
def test_minipsp_conv_forces_an_algorithm(value, expected, monkeypatch):
    monkeypatch.setenv("MINIPSP_CONV", value)
    # a tiny map with 1 channel: the table would say im2col
    assert algorithm.choose((1, 1, 4, 4), (1, 1, 3, 3), (1, 1), (1, 1), (1, 1)) == (expected, expected)
    assert algorithm.choose((1, 1, 8, 8), (1, 1, 3, 3), (2, 2), (1, 1), (1, 1)) == ("im2col", "im2col")


def test_bad_minipsp_conv_is_named(monkeypatch):
    monkeypatch.setenv("MINIPSP_CONV", "fft")
    with pytest.raises(ValueError, match=r"MINIPSP_CONV must be one of .*'winograd'.*; got 'fft'"):
        cpu.conv2d_forward(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3)), None, (1, 1), (1, 1), (1, 1))


# ---------------------------------------------------------------- the whole PSPNet against torch

def _parity_module():
    path = Path(__file__).resolve().parents[1] / "models" / "test_pspnet_parity.py"
    spec = importlib.util.spec_from_file_location("pspnet_parity_for_winograd", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pspnet18_torch_parity_with_winograd2_forced(tmp_path, monkeypatch):
    """tests/models/test_pspnet_parity.py's PSPNet-18 training check (float64 and float32, values and
    gradients) with every 3x3 stride-1 conv of the network on F(2x2, 3x3)."""
    monkeypatch.setenv("MINIPSP_CONV", "winograd2")
    _parity_module().check_parity(tmp_path, True, layers=18, dropout=0.0)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_pspnet18_torch_parity_with_winograd4_forced(tmp_path, monkeypatch, train):
    """The same with F(4x4, 3x3), float32 gradients included: with the points 0, +-3/2, +-2/3 they are
    5.6e-5 from float64 (relative L2; torch 2.8e-5, 2e-4 allowed). With Lavin & Gray's 0, +-1, +-2 they
    were 6e-4 and this check failed (winograd.py's docstring)."""
    monkeypatch.setenv("MINIPSP_CONV", "winograd4")
    _parity_module().check_parity(tmp_path, train, layers=18, dropout=0.0)


def test_the_worker_threads_run_here():
    """The machines this runs on (2+ cores, NumPy's OpenBLAS) have the per-thread BLAS setting, so the
    'threaded' cases above do run one image per thread rather than falling back."""
    from minipsp.kernels.conv2d import threads
    assert threads.pool() is not None
    enough, limit = winograd.PARALLEL_MIN_SIZE, winograd.THREADED_FILTER_BYTES
    many = winograd.THREADED_MIN_IMAGES_PER_WORKER * threads.workers()
    assert threads.workers() >= 2
    assert winograd._threaded(many, 1000, 81, enough, limit) is threads.pool()
    assert winograd._threaded(many - 1, 1000, 81, enough, limit) is None                       # few images: prange path
    assert winograd._threaded(8, 1000, 25, enough, limit) is None                              # small maps
    assert winograd._threaded(8, limit + 1, 81, enough, limit) is None  # large filter


def test_the_workers_leave_the_blas_thread_count_as_it_was(monkeypatch):
    """OpenBLAS's thread count is process-wide: the workers' one-thread section must put it back, or
    every later GEMM of the main thread (im2col, large filters) would run on one thread."""
    from minipsp.kernels.conv2d import threads
    assert threads.pool() is not None
    get, _ = threads._blas
    before = get()
    seen = []
    real_output = winograd._output

    def spy(*args):
        seen.append(get())
        return real_output(*args)
    monkeypatch.setattr(winograd, "_output", spy)
    monkeypatch.setattr(winograd, "PARALLEL_MIN_SIZE", 0)
    monkeypatch.setattr(winograd, "THREADED_MIN_TILES", 0)
    monkeypatch.setattr(winograd, "THREADED_MIN_IMAGES_PER_WORKER", 1)
    x, weight = np.ones((3, 4, 9, 9)), np.ones((4, 4, 3, 3))
    winograd.conv2d_forward(x, weight, None, (1, 1), (1, 1), 4)
    assert seen == [1, 1, 1]           # inside: one BLAS thread, for each image's GEMMs
    assert get() == before             # after: as it was


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("C_in, C_out", [(7, 9), (9, 7)], ids=["more outputs", "more inputs"])
def test_large_filters_go_in_blocks_of_channels(m, d, C_in, C_out, monkeypatch):
    """Above FILTER_BLOCK_BYTES the transformed filter is made block by block (forward, dx, dw), along
    the larger channel count (output blocks each transformed out, input blocks summed): same results."""
    monkeypatch.setattr(winograd, "FILTER_BLOCK_BYTES", 2000)
    rng = np.random.default_rng(m + d)
    x, weight = rng.standard_normal((3, C_in, 11, 10)), rng.standard_normal((C_out, C_in, 3, 3))
    dy = rng.standard_normal((3, C_out, 11, 10))
    assert len(winograd._channel_blocks(9, (m + 2) ** 2 * 9 * 7 * 8)) > 1
    hyper = (1, 1), (d, d), (d, d)
    dx, dw, _ = reference.conv2d_backward(dy, x, weight, *hyper)
    np.testing.assert_allclose(winograd.conv2d_forward(x, weight, None, (d, d), (d, d), m),
                               reference.conv2d_forward(x, weight, None, *hyper), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(winograd.conv2d_input_grad(dy, weight, x.shape, (d, d), (d, d), m), dx,
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(winograd.conv2d_weight_grad(dy, x, weight.shape, (d, d), (d, d), m), dw,
                               rtol=1e-10, atol=1e-10)
