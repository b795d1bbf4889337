"""conv2d: 2-D convolution (cross-correlation, as in PyTorch) as im2col + one matrix product.

    y[n, co, oh, ow] = b[co] + sum_{c, kh, kw} w[co, c, kh, kw] * xpad[n, c, oh*sh + kh*dh, ow*sw + kw*dw]

where xpad is x with `ph` zero rows above and below and `pw` zero columns left and right,
(sh, sw) the stride, (ph, pw) the zero padding and (dh, dw) the dilation. Output size per axis:

    OH = floor((H + 2*ph - dh*(KH - 1) - 1) / sh) + 1        (the same for OW with W, pw, dw, KW, sw)

dh*(KH - 1) + 1 is the height of the dilated kernel: its KH taps spread dh pixels apart.

im2col copies every input pixel that a kernel tap sees into one matrix, so the sum above becomes a
single GEMM (one call to the BLAS, or to cuBLAS on the GPU):

    cols[(c*KH + kh)*KW + kw, (n*OH + oh)*OW + ow] = xpad[n, c, oh*sh + kh*dh, ow*sw + kw*dw]
    cols: (C_in*KH*KW, N*OH*OW)        w_mat = w.reshape(C_out, C_in*KH*KW)
    y_mat = w_mat @ cols: (C_out, N*OH*OW)  -> reordered to y (N, C_out, OH, OW), plus b[co]

Backward, with dy_mat = dy reordered to (C_out, N*OH*OW):

    dw  = (dy_mat @ cols^T).reshape(C_out, C_in, KH, KW)     one GEMM
    dx  = col2im(w_mat^T @ dy_mat)                          one GEMM, then col2im
    db  = sum of dy over n, oh, ow

col2im is the adjoint (transpose) of im2col: every entry of dcols is added back to the input pixel
it was copied from; entries that came from the zero padding are dropped. Written as a gather, each
input pixel (n, c, h, w) sums the entries of its taps: for every (kh, kw) with
h + ph - kh*dh = oh*sh (0 <= oh < OH) and w + pw - kw*dw = ow*sw (0 <= ow < OW),

    dx[n, c, h, w] = sum dcols[(c*KH + kh)*KW + kw, (n*OH + oh)*OW + ow]

Variants (same functions, arguments and results in each):
    reference.py  NumPy: one strided slice per kernel tap (kh, kw)
    cpu.py        Numba @njit(parallel=True): im2col in parallel over rows of cols, col2im in
                  parallel over (n, c) input planes (each plane owned by one thread: no races)
    cuda.py       Numba @cuda.jit: im2col with one thread per entry of cols, col2im with one
                  thread per input pixel gathering its taps (no atomics)

Functions: output_size, im2col, col2im, conv2d_forward, conv2d_backward.
Stride, padding and dilation are pairs (along H, along W); kernel_size is (KH, KW).
Ref: Chellapilla, Puri & Simard 2006 (convolution as matrix product); Yu & Koltun 2016 (dilation).
"""
