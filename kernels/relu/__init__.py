"""ReLU: y = max(x, 0), elementwise, any shape.

Backward: dx = dy where y > 0, else 0. It needs only the sign of the OUTPUT (y > 0 exactly where
x > 0), so the forward can overwrite its input (`out=x`) and backward still has what it needs.
At x == 0 the derivative is taken as 0, as in PyTorch.

Every variant (reference, cpu, cuda) has the same two functions:

    relu_forward(x, out=None)   -> y        (out: where to write y; pass x itself for in place)
    relu_backward(dy, y)        -> dx
"""
