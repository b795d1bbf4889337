"""Dropout: zero each value with probability p and scale the kept ones by 1 / (1 - p).

The kernels only apply a mask they are given; drawing it is the functional layer's job, from
minipsp's seeded generator (`minipsp.random.get_rng`), so that `minipsp.manual_seed` makes a run
reproducible and every variant sees the same mask.

    dropout:   y[i] = x[i] * mask[i] * scale                mask: bool, the shape of x
    dropout2d: y[n,c,h,w] = x[n,c,h,w] * mask[n,c] * scale  mask: bool (N, C), one per channel map
    scale = 1 / (1 - p)   (0 when p == 1: everything is dropped)

Scaling at training time keeps E[y] = x, so at eval time dropout is simply the identity.
Backward is the same masked scaling of dy: dx = dy * mask * scale.

Every variant (reference, cpu, cuda) has the same four functions:

    dropout_forward(x, mask, p)     -> y        dropout_backward(dy, mask, p)     -> dx
    dropout2d_forward(x, mask, p)   -> y        dropout2d_backward(dy, mask, p)   -> dx
"""
