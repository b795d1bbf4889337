"""`gradcheck`: compare backward's gradient with central finite differences, in float64.

For a function y = f(x_1, ..., x_k) with output of any shape we check the vector-Jacobian product
that backward computes. A fixed random direction v (same shape as y) turns the output into the
scalar L = sum(v * y); then for each input x that requires grad and each element i

    numeric  dL/dx[i] ~ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)      error O(eps^2)
    analytic dL/dx[i] = x.grad[i] after (v * y).sum().backward()

and every element must satisfy |analytic - numeric| <= atol + rtol * |numeric|.
A random v (rather than all ones) makes it unlikely that a wrong gradient passes by cancelling out.
"""

from __future__ import annotations

import numpy as np

from minipsp.backend import get_array_module, to_numpy


class GradcheckError(AssertionError):
    """The analytic and numeric gradients disagree; the message says where and by how much."""


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Return True if fn's backward agrees with central differences for every input requiring grad.

    fn: a callable taking the tensors in `inputs` and returning one Tensor.
    inputs: a Tensor or a sequence of Tensors (and other arguments, passed through). Every tensor that
        requires grad must be float64: in float32 the differences drown in round-off.
    Raises GradcheckError naming the input, the worst element's index, and both values.
    """
    from minipsp.tensor import Tensor

    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    inputs = tuple(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad, so there is nothing to check")
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} has dtype {inputs[i].dtype}; use float64 "
                            "(tensor.double()), as finite differences in float32 are too noisy")

    output = fn(*inputs)
    if not isinstance(output, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor; got {type(output).__name__}")
    xp = get_array_module(output.data)
    rng = np.random.default_rng(seed)
    direction = xp.asarray(rng.standard_normal(output.shape)).astype(output.dtype)

    for i in checked:
        inputs[i].grad = None
    if output.requires_grad:
        (output * direction).sum().backward()

    def scalar_output():
        return float((fn(*inputs).data * direction).sum())

    for i in checked:
        x = inputs[i]
        analytic = to_numpy(x.grad) if x.grad is not None else np.zeros(x.shape)
        numeric = np.zeros(x.shape)
        if not x.data.flags.c_contiguous:  # so that reshape(-1) below is a view, not a copy
            x.data = get_array_module(x.data).ascontiguousarray(x.data)
        flat = x.data.reshape(-1)  # a view: writing to it perturbs x in place
        for k in range(flat.size):
            original = flat[k].item()
            flat[k] = original + eps
            plus = scalar_output()
            flat[k] = original - eps
            minus = scalar_output()
            flat[k] = original
            numeric.reshape(-1)[k] = (plus - minus) / (2 * eps)
        error = np.abs(analytic - numeric)
        allowed = atol + rtol * np.abs(numeric)
        if not np.all(error <= allowed):
            worst = np.unravel_index(np.argmax(error - allowed), x.shape)
            raise GradcheckError(
                f"gradcheck failed for input {i} (shape {x.shape}) at index {tuple(int(j) for j in worst)}: "
                f"analytic {analytic[worst]:.8g}, numeric {numeric[worst]:.8g}, "
                f"difference {error[worst]:.3g} > allowed {allowed[worst]:.3g} "
                f"(atol={atol}, rtol={rtol}); {int(np.sum(error > allowed))} of {error.size} elements fail"
            )
    for i in checked:
        inputs[i].grad = None
    return True
