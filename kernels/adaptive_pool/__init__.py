"""Adaptive pooling: pool an H x W map to a fixed OH x OW grid of bins, whatever H and W are.

This is the pyramid pooling module's core: PSPNet pools its feature map to 1x1, 2x2, 3x3 and 6x6.
Bins (PyTorch's rule), along the rows (the columns likewise with W, OW):
    start(i) = floor(i * H / OH),   end(i) = ceil((i + 1) * H / OH),   0 <= i < OH
Every bin is non-empty and together they cover every row. When OH does not divide H, neighbouring
bins overlap by a row (7 -> 6: [0,2) [1,3) [2,4) [3,5) [4,6) [5,7)); when OH > H, rows repeat.

Average:  y[n,c,i,j] = mean of x[n,c, start(i):end(i), start(j):end(j)]
          dx[n,c,h,w] = sum over the bins (i,j) that contain (h,w) of dy[n,c,i,j] / area(i,j)
          (a pixel in two overlapping bins gets a share from each)
Max:      y[n,c,i,j] = max over the bin, indices[n,c,i,j] = h*W + w of that max (first in
          row-major order on ties; a NaN wins and propagates)
          dx[n,c].flat[indices[n,c,i,j]] += dy[n,c,i,j]      (a scatter-add: bins overlap)
Pixel (h, w) is in bin i exactly when floor(h*OH/H) <= i <= ceil((h+1)*OH/H) - 1 (the inverse
of the rule above; the cuda backward uses it to gather instead of scatter).
Shapes: x, dx (N,C,H,W); y, dy, indices (N,C,OH,OW), indices int64.

Functions (the same in reference, cpu and cuda):
    adaptive_avg_pool2d_forward(x, output_size) -> y
    adaptive_avg_pool2d_backward(dy, input_shape) -> dx
    adaptive_max_pool2d_forward(x, output_size) -> (y, indices)
    adaptive_max_pool2d_backward(dy, indices, input_shape) -> dx
output_size is a pair (OH, OW) of ints >= 1 (the functional layer resolves ints and Nones).
reference and cpu share `adaptive_bin_edges` (in reference.py); cuda computes the same formula
inline in its kernels.
"""
