"""Space-to-batch: a dilated 3x3 convolution as d*d undilated ones on the phase sub-images (exact).

With dilation d, padding p, stride 1, along one axis (the other is the same):

    y[o] = sum_k w[k] * x[o - p + d*k]            (x = 0 outside 0 <= . < H), 0 <= o < OH

Split the outputs by phase a = o mod d, o = a + d*i. Write a - p = d*q + r with 0 <= r < d
(floor division: q = (a - p) // d, r = (a - p) % d). Then

    x[o - p + d*k] = x[r + d*(i + q + k)] = x_r[i + q + k],      x_r = x[r::d]  (the phase sub-image)

so y[a::d] is an UNDILATED correlation of the sub-image x_r, whose first output row i = 0 reads
x_r at q, q + 1, q + 2: the padding of this small convolution is -q on top, and whatever is
missing at the bottom is zero too. Each output phase a reads exactly one input phase r (a -> r is
a bijection of 0..d-1), so nothing is computed twice and nothing is approximated. In 2-D the
phases are pairs (a, b), d*d of them. For dilation 2 and padding 2 (PSPNet's layer3):

    x (8 x 8)             phase sub-images (4 x 4 each)           y = the four results interleaved
    A b A b A b A b       x[0::2, 0::2] = A A A A   x[0::2, 1::2] = b b b b     y[0::2, 0::2] <- conv(A)
    c D c D c D c D                       A A A A                   b b b b     y[0::2, 1::2] <- conv(b)
    A b A b A b A b       x[1::2, 0::2] = c c c c   x[1::2, 1::2] = D D D D     y[1::2, 0::2] <- conv(c)
    c D c D c D c D                       ...                       ...         y[1::2, 1::2] <- conv(D)

Here p = d, so a - p = a - d lies in [-d, 0): q = -1 and r = a for every phase, i.e. each small
convolution has padding 1 (-q) all round, as an ordinary 3x3 'same' convolution. With other
paddings, or sizes that d does not divide, the phases differ in size and in padding; the table
below records each one's own, so the split stays exact (that is what TensorFlow's atrous
convolution gets by padding the input up to a multiple of d first; here nothing is copied: the
Winograd loops read x[r::d, s::d] in place, and write y[a::d, b::d] in place).

Nothing here needs d > 1: with d = 1 there is one phase, r = 0 and q = -p.
Ref: Yu & Koltun 2016 (dilated convolution); TensorFlow tf.nn.atrous_conv2d; ncnn forwardDilation.
"""

import numpy as np

# Columns of a phase table row (one row per phase (a, b)); every entry is an int.
R, S, HR, WR, QH, QW, A, B, OHA, OWB, TILES_H, TILES_W, BASE = range(13)


def phase_table(H, W, OH, OW, padding, dilation, m):
    """The phases of y (N, C_out, OH, OW) = conv3x3(x (N, C_in, H, W), padding, dilation), stride 1.

    One row per non-empty output phase (a, b), as int64:
      r, s      the input phase: the sub-image x[:, :, r::dh, s::dw], of size hr x wr
      qh, qw    where tile 0 starts in that sub-image (its padding is -qh on top, -qw on the left)
      a, b      the output phase: y[:, :, a::dh, b::dw], of size oha x owb
      tiles_h, tiles_w   ceil(oha / m) x ceil(owb / m) Winograd tiles of m x m outputs cover it
      base      index of the phase's first tile among one image's tiles
    Returns (table (P, 13), tiles per image). Padding may be negative (backward data can need it).
    """
    (ph, pw), (dh, dw) = padding, dilation
    rows, base = [], 0
    for a in range(dh):
        for b in range(dw):
            oha, owb = (OH - a + dh - 1) // dh, (OW - b + dw - 1) // dw
            if oha <= 0 or owb <= 0:
                continue
            qh, r = divmod(a - ph, dh)
            qw, s = divmod(b - pw, dw)
            hr, wr = (H - r + dh - 1) // dh, (W - s + dw - 1) // dw
            tiles_h, tiles_w = -(-oha // m), -(-owb // m)
            rows.append((r, s, hr, wr, qh, qw, a, b, oha, owb, tiles_h, tiles_w, base))
            base += tiles_h * tiles_w
    return np.array(rows, dtype=np.int64).reshape(-1, 13), base


def space_to_batch(x, dilation):
    """The phase sub-images of x (N, C, H, W) for dilation (dh, dw): a list, x[:, :, r::dh, s::dw]
    for r in range(dh), s in range(dw) (row-major). A NumPy picture of the idea, for the notebook and
    the tests; the convolution itself never makes these copies."""
    dh, dw = dilation
    return [x[:, :, r::dh, s::dw] for r in range(dh) for s in range(dw)]


def batch_to_space(phases, shape, dilation):
    """The inverse of space_to_batch: interleave the phase images back into an array of `shape`."""
    dh, dw = dilation
    y = np.empty(shape, dtype=phases[0].dtype)
    for index, phase in enumerate(phases):
        y[:, :, index // dw::dh, index % dw::dw] = phase
    return y
