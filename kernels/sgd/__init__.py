"""One SGD update of one parameter, in place: weight decay, momentum (with dampening), Nesterov.

For a parameter p with gradient g (the same order as torch.optim.SGD; wd weight decay, m momentum,
d dampening, buf the momentum buffer):

    g   = g + wd * p                     (an L2 penalty, folded into the gradient)
    buf = g                              on the first step        } only when m != 0
    buf = m * buf + (1 - d) * g          afterwards               }
    g   = g + m * buf  if nesterov  else  buf
    p   = p - lr * g

The scalars are rounded to p's dtype first and every operation is one rounding in that dtype, as
NumPy does `float32_array * python_float`: the variants agree bit for bit. Written as NumPy
expressions (reference.py) this is six passes over memory, four of them making a temporary array
the size of p; PSPNet-50's 49 M parameters made it 95 ms of a 1.7 s training step on 2 cores
(torch's foreach SGD: 39 ms). The cpu and cuda variants make it one pass: each element of p, g and
buf read once, p and buf written once.

Every variant (reference, cpu, cuda) has the same function:

    sgd_step(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov, first)

param, grad and momentum_buffer (None when momentum == 0) have one shape and one dtype; param and
momentum_buffer are updated in place, nothing is returned. `first`: the buffer holds nothing yet
(it is then set to g, not blended with what it holds).
"""
