"""Max pooling: the largest value in each KH x KW window, and where it was.

Forward (stride SH, SW; padding PH, PW, implicit -inf so padding never wins):
    y[n,c,i,j]       = max   x[n,c, i*SH - PH + a, j*SW - PW + b]     0 <= a < KH, 0 <= b < KW
    indices[n,c,i,j] = h*W + w of that maximum (flat index into the H x W plane, as torch's
                       return_indices); on ties the first in row-major window order wins,
                       and a NaN wins over any number (it propagates, as in torch).
Backward: each dy goes to the pixel that won its window. Windows overlap when stride < kernel,
so one pixel may win several windows and its gradient is a sum (a scatter-add):
    dx[n,c].flat[indices[n,c,i,j]] += dy[n,c,i,j]
Output size (torch's rule):
    OH = floor((H + 2*PH - KH) / SH) + 1        (ceil instead of floor when ceil_mode)
    with ceil_mode the last window must start inside the input or the left padding:
    if (OH - 1) * SH >= H + PH: OH -= 1.                                  (same for OW)
Shapes: x, dx (N,C,H,W); y, dy, indices (N,C,OH,OW), indices int64.

Functions (the same in reference, cpu and cuda):
    max_pool2d_forward(x, kernel_size, stride, padding, ceil_mode) -> (y, indices)
    max_pool2d_backward(dy, indices, input_shape) -> dx
kernel_size, stride, padding are pairs (KH, KW), (SH, SW), (PH, PW); the functional layer
(minipsp.nn.functional.max_pool2d) checks them, so the kernels trust their arguments.
"""


def pool_output_size(size, kernel, stride, padding, ceil_mode):
    """Output length along one axis, with torch's rule for ceil_mode (see the module docstring)."""
    span = size + 2 * padding - kernel
    out = (span + stride - 1) // stride + 1 if ceil_mode else span // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out
