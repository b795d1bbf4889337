"""Chapter 04 (pooling): the checks of its exercises.

4.1 max_pool_backward(dy, indices, x_shape): route each output gradient to its window's winner (scatter-add).
4.2 adaptive_avg_pool_plane(x, output_size): adaptive average pooling of one (H, W) plane, with PyTorch's
    bin edges floor(i*H/OH) and ceil((i+1)*H/OH), for sizes that do not divide.
"""

from __future__ import annotations

import numpy as np

from minipsp.course import Mismatch, exercise, expect_close

# (x shape, kernel, stride, padding): overlapping windows (a pixel can win several), and stride 1
MAX_POOL_CASES = [((2, 3, 6, 6), 3, 2, 1), ((1, 2, 5, 7), 3, 1, 1), ((1, 1, 8, 8), 2, 2, 0)]
# output sizes that divide, do not divide, and exceed the input (H=7, W=10)
ADAPTIVE_SIZES = [(7, 10, (1, 1)), (7, 10, (6, 6)), (7, 10, (3, 4)), (7, 10, (2, 3)), (5, 4, (6, 6)), (60, 60, (6, 6))]


@exercise("4.1", "max pooling's backward: the gradient goes to the winner", solution="max_pool_backward",
          hint="dx starts at zeros; for every output (n, c, i, j) add dy[n, c, i, j] to dx[n, c].flat[indices[n, c, i, "
               "j]] (the flat index is h * W + w: h, w = divmod(index, W)); with overlapping windows one pixel can "
               "win twice, so ADD (np.add.at), a fancy-index "
               "assignment keeps only one of the two")
def check_max_pool_backward(max_pool_backward):
    import minipsp
    import minipsp.nn.functional as F

    rng = np.random.default_rng(0)
    for shape, k, s, p in MAX_POOL_CASES:
        x = rng.permutation(int(np.prod(shape))).reshape(shape).astype(np.float64)  # distinct: no ties
        xt = minipsp.tensor(x, requires_grad=True)
        y, indices = F.max_pool2d(xt, k, s, p, return_indices=True)
        dy = rng.uniform(0.5, 1.5, size=y.shape)
        y.backward(dy)
        got = max_pool_backward(dy, indices.numpy(), shape)
        expect_close(f"dx for max_pool2d(x {shape}, kernel_size={k}, stride={s}, padding={p})", got, xt.grad,
                     rtol=1e-12, atol=1e-12)
    return f"dx equals autograd's through F.max_pool2d on {len(MAX_POOL_CASES)} cases, with pixels that win twice"


@exercise("4.2", "adaptive average pooling with bins that do not divide", solution="adaptive_avg_pool_plane",
          hint="bin i covers rows floor(i*H/OH) to ceil((i+1)*H/OH) (exclusive end); in integers: i*H // OH and "
               "-(-(i+1)*H // OH); neighbouring bins may overlap, and each output is the mean of its bin")
def check_adaptive_avg_pool_plane(adaptive_avg_pool_plane):
    import minipsp
    import minipsp.nn.functional as F

    rng = np.random.default_rng(1)
    for H, W, size in ADAPTIVE_SIZES:
        x = rng.standard_normal((H, W))
        expected = F.adaptive_avg_pool2d(minipsp.tensor(x[None, None]), size).numpy()[0, 0]
        got = adaptive_avg_pool_plane(x, size)
        if got is None:
            raise Mismatch(f"adaptive_avg_pool_plane returned None for x ({H}, {W}) -> {size}; return the plane.")
        got_array = np.asarray(got, dtype=np.float64)
        if got_array.shape == expected.shape and not np.allclose(got_array, expected, rtol=1e-10, atol=1e-12):
            i, j = (int(k) for k in np.argwhere(~np.isclose(got_array, expected, rtol=1e-10, atol=1e-12))[0])
            (OH, OW) = size
            r0, r1, c0, c1 = i * H // OH, -(-(i + 1) * H // OH), j * W // OW, -(-(j + 1) * W // OW)
            raise Mismatch(f"adaptive_avg_pool_plane(x ({H}, {W}), output_size={size}): bin ({i}, {j}) should be the "
                           f"mean of x[{r0}:{r1}, {c0}:{c1}] = {expected[i, j]:.6g}, got {got_array[i, j]:.6g}. "
                           f"Hint: rows floor({i}*{H}/{OH}) = {r0} to ceil({i + 1}*{H}/{OH}) = {r1} (exclusive), "
                           f"columns floor({j}*{W}/{OW}) = {c0} to ceil({j + 1}*{W}/{OW}) = {c1}.")
        expect_close(f"adaptive_avg_pool_plane(x ({H}, {W}), output_size={size})", got, expected, rtol=1e-10,
                     atol=1e-12)
    return f"equals F.adaptive_avg_pool2d on {len(ADAPTIVE_SIZES)} sizes, among them 7 -> 6, 10 -> 3 and 5 -> 6"
