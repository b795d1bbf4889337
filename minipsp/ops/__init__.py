"""The Tensor's own differentiable ops: arithmetic, reductions, shapes. Kernel-backed layers
(convolution, batch norm, pooling, ...) live in `minipsp.nn.functional`."""
