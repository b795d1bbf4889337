"""Chapter 08 (PSPNet): the checks of its exercises.

8.1 ppm_forward(x, branches, bins): the pyramid pooling module from F ops (adaptive_avg_pool2d, conv2d,
    batch_norm, relu, interpolate with align_corners=True, cat), matched against models.PPM in eval mode.
8.2 landing_rows(bins, size): where each pooled cell's value lands after the PPM's upsampling
    (align_corners=True: on the corners of the map, not the bin centres), read off F.interpolate.
"""

from __future__ import annotations

import numpy as np

from minipsp.course import Mismatch, exercise, expect_close

# (N, C, H, W, reduction_dim, bins): the paper's bins on odd maps (17 = 129 px at stride 8), one bin, a size
# smaller than the largest bin
PPM_CASES = [(2, 8, 17, 17, 2, (1, 2, 3, 6)), (1, 6, 9, 13, 3, (1,)), (1, 4, 5, 5, 1, (1, 2, 3, 6))]
LANDING_CASES = [(2, 17), (3, 17), (6, 17), (6, 60), (3, 9)]


def random_ppm(in_dim, reduction_dim, bins, seed):
    """A models.PPM in eval mode with random weights and batch-norm statistics (float64)."""
    from minipsp.models import PPM

    rng = np.random.default_rng(seed)
    ppm = PPM(in_dim, reduction_dim, bins).double().eval()
    for branch in ppm.features:
        conv, bn = branch[1], branch[2]
        conv.weight.data[...] = rng.standard_normal(conv.weight.shape) / np.sqrt(in_dim)
        bn.weight.data[...] = rng.uniform(0.5, 1.5, reduction_dim)
        bn.bias.data[...] = rng.uniform(-0.5, 0.5, reduction_dim)
        bn.running_mean.data[...] = rng.uniform(-0.3, 0.3, reduction_dim)
        bn.running_var.data[...] = rng.uniform(0.5, 2.0, reduction_dim)
    return ppm


def branch_weights(ppm):
    """What the learner's ppm_forward receives: per branch, the conv weight and the BN's four arrays."""
    return [{"conv_weight": b[1].weight.data.copy(), "bn_weight": b[2].weight.data.copy(),
             "bn_bias": b[2].bias.data.copy(), "running_mean": b[2].running_mean.data.copy(),
             "running_var": b[2].running_var.data.copy()} for b in ppm.features]


@exercise("8.1", "the pyramid pooling module from F ops", solution="ppm_forward",
          hint="for each bin b: F.adaptive_avg_pool2d(x, b) -> F.conv2d(., conv_weight) (1x1, no bias) -> "
               "F.batch_norm(., running_mean, running_var, bn_weight, bn_bias, training=False) -> F.relu -> "
               "F.interpolate(., size=(H, W), mode='bilinear', align_corners=True); then minipsp.cat([x, *branches], "
               "dim=1): the input itself comes first")
def check_ppm_forward(ppm_forward):
    import minipsp

    for seed, (n, c, h, w, r, bins) in enumerate(PPM_CASES):
        ppm = random_ppm(c, r, bins, seed)
        x = minipsp.tensor(np.random.default_rng(10 + seed).standard_normal((n, c, h, w)))
        with minipsp.no_grad():
            expected = ppm(x).numpy()
            got = ppm_forward(x, branch_weights(ppm), bins)
        if got is None:
            raise Mismatch("ppm_forward returned None; return the concatenated Tensor (N, C + len(bins) * R, H, W).")
        what = f"ppm_forward(x {(n, c, h, w)}, bins={bins}) against models.PPM (reduction_dim={r}, eval mode)"
        got_array = np.asarray(getattr(got, "data", got))
        if got_array.shape == expected.shape:      # say which part of the concatenation is wrong
            blocks = [("the input x itself", 0, c)] + [(f"the bin-{b} branch", c + i * r, c + (i + 1) * r)
                                                       for i, b in enumerate(bins)]
            wrong = [(name, lo, hi) for name, lo, hi in blocks
                     if not np.allclose(got_array[:, lo:hi], expected[:, lo:hi], rtol=1e-9, atol=1e-10)]
            if wrong:
                name, lo, hi = wrong[0]
                where = f"wrong in {', '.join(n for n, _, _ in wrong)}; in {name} (output channels {lo}-{hi - 1})"
                expect_close(f"{what}: {where}", got_array[:, lo:hi], expected[:, lo:hi], rtol=1e-9, atol=1e-10)
        expect_close(what, got, expected, rtol=1e-9, atol=1e-10)
    return f"equals models.PPM on {len(PPM_CASES)} cases: bins 1, 2, 3, 6 on 17 x 17, one bin on 9 x 13, and a 5 x 5 " \
           "map smaller than the 6 x 6 bins"


@exercise("8.2", "where the pooled values land: align_corners=True", solution="landing_rows",
          hint="with align_corners=True output row y reads input position y * (bins - 1) / (size - 1), so cell i "
               "sits exactly at y = i * (size - 1) / (bins - 1): cell 0 on the first row, the last cell on the last "
               "row. The bin centres are where align_corners=False puts them")
def check_landing_rows(landing_rows):
    import minipsp
    import minipsp.nn.functional as F

    for bins, size in LANDING_CASES:
        # Upsample a ramp (cell i holds the value i): the upsampled value at row y is the input position it reads,
        # so the row where cell i lands is where the upsampled ramp equals i.
        ramp = minipsp.tensor(np.arange(bins, dtype=np.float64).reshape(1, 1, bins, 1))
        up = F.interpolate(ramp, size=(size, 1), mode="bilinear", align_corners=True).numpy()[0, 0, :, 0]
        expected = np.interp(np.arange(bins), up, np.arange(size, dtype=np.float64))
        got = landing_rows(bins, size)
        if got is None:
            raise Mismatch(f"landing_rows({bins}, {size}) returned None; return the {bins} rows (floats).")
        expect_close(f"landing_rows(bins={bins}, size={size}) (read off F.interpolate(..., align_corners=True))",
                     np.asarray(got, dtype=np.float64), expected, rtol=1e-9, atol=1e-9)
    return f"equals where F.interpolate(align_corners=True) puts each cell, on {len(LANDING_CASES)} cases (6 bins on " \
           "17 rows: 0, 3.2, 6.4, 9.6, 12.8, 16)"
