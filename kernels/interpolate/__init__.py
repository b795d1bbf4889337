"""Resizing a feature map: bilinear and nearest interpolation, forward and backward.

Shapes: x (N,C,H,W) -> y (N,C,OH,OW), interpolated independently along H and along W.

Where an output pixel samples the input (per axis, in = H or W, out = OH or OW):

    align_corners=True:   src = dst * (in - 1) / (out - 1)          (0 when out == 1)
                          the corner pixels of input and output are aligned exactly.
    align_corners=False:  src = max((dst + 0.5) * scale - 0.5, 0)    pixels are areas: their
                          centres are aligned, scale = in / out, or 1 / scale_factor when the
                          caller gave a scale factor (as torch does without recompute_scale_factor).
    either, when out == in:   src = dst                                 (torch's shortcut: an axis whose
                          size does not change is copied, whatever the scale factor)
    nearest:              src = min(floor(dst * scale), in - 1)      (torch's legacy 'nearest',
                          with torch's shortcuts: the same pixel when out == in, dst // 2 when
                          out == 2 * in; computed in float32 as torch does, so the same pixel is picked)

Bilinear forward, with i0 = floor(src), i1 = min(i0 + 1, in - 1), lam = src - i0 per axis:

    y[n,c,oh,ow] = (1-lh) * ((1-lw) * x[h0,w0] + lw * x[h0,w1])
                 +    lh  * ((1-lw) * x[h1,w0] + lw * x[h1,w1])

Bilinear backward: y is linear in x, so dx is the transpose: every output gradient dy[oh,ow] is
scattered (added) to its 4 source pixels with the same 4 weights. Several outputs share a source
pixel (when upsampling x8, each input pixel feeds about 16 x 16 outputs), so the writes collide:
the CPU kernel gives each (n, c) plane to one thread, the CUDA kernel uses atomic adds.

Nearest backward: dx[n,c,ih,iw] = sum of dy over the outputs that copied x[n,c,ih,iw].

Functions (same names and arguments in reference, cpu and cuda):
    bilinear_forward(x, size, align_corners, scales=None)        -> y (N,C,OH,OW)
    bilinear_backward(dy, input_size, align_corners, scales=None) -> dx (N,C,H,W)
    nearest_forward(x, size, scales=None)                         -> y
    nearest_backward(dy, input_size, scales=None)                 -> dx
size = (OH, OW), input_size = (H, W), scales = (scale_h, scale_w) the user's scale factors or None.
The source indices and weights come from `reference.bilinear_source` / `reference.nearest_source`,
shared by all three variants so that they sample exactly the same points.
Ref: torch ATen/native/UpSample.h (area_pixel_compute_source_index, nearest_idx).
"""
