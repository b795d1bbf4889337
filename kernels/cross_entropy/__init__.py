"""Softmax cross-entropy with an ignore label: log_softmax over the class axis, and the NLL loss.

Shapes: logits x (N,K,H,W) or (N,K) (any trailing axes: the kernels see (N,K,P), P pixels);
target t (N,H,W) or (N,) of integer labels in [0, K) or equal to ignore_index; weight w (K,).

log_softmax, numerically stable (subtracting the max keeps exp from overflowing):
    m = max_k x[n,k,p],   s[n,p] = sum_k exp(x[n,k,p] - m),   y = (x - m) - log(s)
    (not x - (m + log s): when y is near 0, x and m + log s are two large, nearly equal numbers,
    and in float32 their difference would lose most of its digits; x - m is exact for the max.)
    backward: dx = dy - exp(y) * sum_k dy                       (exp(y) = softmax)

NLL with ignore_index and class weights, per pixel (0 where t == ignore_index):
    loss[n,p] = -w[t] * y[n,t,p],   weight[n,p] = w[t]
    sum of loss = the summed loss; sum of weight = the weight total (the count of non-ignored
    pixels when w = 1), by which reduction 'mean' divides.
    backward: dy[n,t,p] = -w[t] * dloss[n,p], 0 for the other classes and ignored pixels.

Fused cross-entropy (log_softmax then NLL in one pass), which saves the softmax for backward:
    loss[n,p] = w[t] * (log(s[n,p]) - (x[n,t,p] - m[n,p]))
    backward: dx[n,k,p] = dloss[n,p] * w[t] * (softmax[n,k,p] - [k == t])     (no exp needed)

Functions (same names and arguments in reference, cpu and cuda; weight always an array (K,):
ones when the caller gives none; labels are checked by the caller, the kernels trust them):
    log_softmax_forward(x)                                   -> y (N,K,...)
    log_softmax_backward(dy, y)                              -> dx
    nll_loss_forward(y, target, weight, ignore_index)        -> (loss, weight) per pixel (N,...)
    nll_loss_backward(dloss, target, weight, ignore_index, num_classes)  -> dy (N,K,...)
    cross_entropy_forward(x, target, weight, ignore_index)   -> (loss, weight) per pixel, softmax
    cross_entropy_backward(dloss, prob, target, weight, ignore_index)    -> dx (N,K,...)
The per-pixel arrays are reduced by the caller with xp.sum (pairwise summation, accurate in float32).
"""
