"""Batch normalisation over (N, H, W) for each channel (Ioffe & Szegedy, 2015).

Training mode normalises with the statistics of the batch itself. With M = N * H * W values per
channel c:

    mean[c] = 1/M * sum_{n,h,w} x[n,c,h,w]
    var[c]  = 1/M * sum_{n,h,w} (x[n,c,h,w] - mean[c])^2        (biased: divide by M)
    rstd[c] = 1 / sqrt(var[c] + eps)
    xhat    = (x - mean) * rstd
    y       = weight * xhat + bias                               (weight = gamma, bias = beta)

Backward. mean and rstd depend on every x of the channel, so dx has three terms: the direct one
and one through each statistic. With dxhat = dy * weight and sums over (N, H, W):

    dx      = rstd / M * (M * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))
    dweight = sum(dy * xhat)
    dbias   = sum(dy)

Eval mode uses fixed running statistics instead (rstd = 1 / sqrt(running_var + eps)), so y is
an affine function of x per channel and dx = dy * weight * rstd; dweight and dbias are as above.

Shapes: x, y, dy, dx (N, C, H, W); weight, bias, mean, var, rstd, running_* (C,).
Every variant (reference, cpu, cuda) has the same four functions:

    batch_norm_forward(x, weight, bias, eps)                                  -> y, mean, var, rstd
    batch_norm_backward(dy, x, weight, mean, rstd)                            -> dx, dweight, dbias
    batch_norm_forward_eval(x, weight, bias, running_mean, running_var, eps)  -> y
    batch_norm_backward_eval(dy, x, weight, running_mean, running_var, eps)   -> dx, dweight, dbias

The training forward returns var (for the running statistics, which the functional layer updates)
and rstd (for backward). Backward recomputes xhat from x, mean and rstd rather than saving it: one
array of the size of x less to keep alive between forward and backward, for one cheap pass.
Sums are accumulated in float64 whatever the input dtype.
"""
