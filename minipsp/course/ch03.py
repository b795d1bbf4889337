"""Chapter 03 (batch norm): the checks of its exercises.

3.1 update_running_stats(running_mean, running_var, x, momentum): the in-place moving averages.
3.2 batch_norm_from_ops(x, weight, bias, eps): training-mode batch norm from primitive Tensor ops, so that
    autograd derives the backward through the statistics; matched against F.batch_norm's gradients.
3.3 batch_norm_backward(dy, x, weight, eps): the backward as a NumPy formula, against the kernel's.
"""

from __future__ import annotations

import numpy as np

from minipsp.course import Mismatch, exercise, expect_close

SHAPES = [(4, 3, 5, 5), (2, 2, 3, 7), (1, 4, 2, 3)]  # the last: a batch of one image (M = H*W)


def _data(shape, seed):
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = rng.normal(1.0, 2.0, size=shape) * rng.uniform(0.5, 2.0, size=(1, C, 1, 1))
    return x, rng.normal(size=C), rng.normal(size=C), rng.normal(size=shape)


@exercise("3.1", "the running statistics", solution="update_running_stats",
          hint="running = (1 - momentum) * running + momentum * batch statistic, written into the arrays "
               "themselves (running_mean[...] = ...); the variance stored is the unbiased one, times M / (M - 1)")
def check_update_running_stats(update_running_stats):
    import minipsp
    import minipsp.nn.functional as F

    for k, shape in enumerate(SHAPES):
        x, *_ = _data(shape, k)
        C = shape[1]
        for momentum in (0.1, 0.3):
            mean0, var0 = np.linspace(-1, 1, C), np.linspace(0.5, 2, C)
            expected_mean, expected_var = mean0.copy(), var0.copy()
            F.batch_norm(minipsp.tensor(x), expected_mean, expected_var, training=True, momentum=momentum)
            running_mean, running_var = mean0.copy(), var0.copy()
            update_running_stats(running_mean, running_var, x, momentum)
            unchanged = [name for name, now, before in (("running_mean", running_mean, mean0),
                                                        ("running_var", running_var, var0))
                         if np.array_equal(now, before)]
            if unchanged:
                raise Mismatch(f"{' and '.join(unchanged)} passed in {'is' if len(unchanged) == 1 else 'are'} "
                               "unchanged after update_running_stats: write into the arrays (running_mean[...] = "
                               "..., or *= and +=), as batch norm does; `running_mean = ...` "
                               "inside the function only rebinds a local name, and returning new arrays does not "
                               "change the ones the layer holds.")
            where = f"x {shape}, momentum {momentum}"
            expect_close(f"running_mean after one update ({where})", running_mean, expected_mean, rtol=1e-10,
                         hint="(1 - momentum) * old + momentum * the batch mean over axes (0, 2, 3)")
            expect_close(f"running_var after one update ({where})", running_var, expected_var, rtol=1e-10,
                         hint="the batch variance stored is the unbiased one: var * M / (M - 1), M = N*H*W")
    return "running_mean and running_var updated in place as F.batch_norm does, 3 shapes x 2 momenta"


@exercise("3.2", "batch norm from primitive Tensor ops", solution="batch_norm_from_ops",
          hint="compute mean and var with Tensor ops (x.mean(dim=(0, 2, 3), keepdim=True), ** 2, ** -0.5) so "
               "that autograd sees them; statistics computed with NumPy (x.numpy(), x.data) are constants to "
               "autograd and give the wrong, eval-mode gradient")
def check_batch_norm_from_ops(batch_norm_from_ops):
    import minipsp
    import minipsp.nn.functional as F

    for k, shape in enumerate(SHAPES):
        x, w, b, dy = _data(shape, 10 + k)
        ours = [minipsp.tensor(a, requires_grad=True) for a in (x, w, b)]
        ref = [minipsp.tensor(a, requires_grad=True) for a in (x, w, b)]
        y = batch_norm_from_ops(*ours, 1e-5)
        if not isinstance(y, minipsp.Tensor):
            raise Mismatch(f"batch_norm_from_ops should return a minipsp Tensor, got {type(y).__name__}.")
        y_ref = F.batch_norm(ref[0], None, None, ref[1], ref[2], training=True, eps=1e-5)
        same_shape = tuple(y.shape) == tuple(y_ref.shape)
        difference = np.abs(np.asarray(y.data, dtype=np.float64) - y_ref.numpy()) if same_shape else np.zeros(1)
        if 1e-9 < difference.max() < 1e-3:  # right to 5 digits: the usual cause is eps
            raise Mismatch(f"y for x {shape} is close to F.batch_norm's but not equal (largest difference "
                           f"{difference.max():.2g}): is eps inside the square root, (var + eps) ** -0.5, with the "
                           "biased variance (divide by M)?")
        expect_close(f"y for x {shape}", y, y_ref.numpy(), rtol=1e-9, atol=1e-10,
                     hint="y = weight * (x - mean) / sqrt(var + eps) + bias, per channel, var biased (divide by M)")
        if not y.requires_grad:
            raise Mismatch("your output does not require grad: it is not connected to x, weight and bias by "
                           "Tensor ops (did you compute it with NumPy arrays?).")
        y.backward(dy)
        y_ref.backward(dy)
        for name, t, r in zip(("dx", "dweight", "dbias"), ours, ref):
            if t.grad is None:
                raise Mismatch(f"{name} is None for x {shape}: that input is not in the graph of your output.")
            expect_close(f"{name} for x {shape} (autograd through your ops vs F.batch_norm)", t.grad, r.grad,
                         rtol=1e-7, atol=1e-9)
    return "forward and all three gradients equal F.batch_norm(training=True) on 3 shapes, one a batch of 1"


@exercise("3.3", "the backward through the batch statistics, as a formula", solution="batch_norm_backward",
          hint="with g = weight * dy (per channel) and sums over (N, H, W): dx = rstd / M * (M g - sum g - "
               "xhat * sum(g xhat)), dweight = sum(dy xhat), dbias = sum(dy)")
def check_batch_norm_backward(batch_norm_backward):
    from minipsp.kernels.batch_norm import reference as bn_ref

    for k, shape in enumerate(SHAPES):
        x, w, b, dy = _data(shape, 20 + k)
        _, mean, _, rstd = bn_ref.batch_norm_forward(x, w, b, 1e-5)
        expected = bn_ref.batch_norm_backward(dy, x, w, mean, rstd)
        answer = batch_norm_backward(dy, x, w, 1e-5)
        if not isinstance(answer, (tuple, list)) or len(answer) != 3:
            raise Mismatch(f"batch_norm_backward should return (dx, dweight, dbias), got {type(answer).__name__}.")
        for name, got, want in zip(("dx", "dweight", "dbias"), answer, expected):
            expect_close(f"{name} for x {shape}", got, want, rtol=1e-7, atol=1e-9)
    return "dx, dweight, dbias equal kernels.batch_norm.reference.batch_norm_backward on 3 shapes"
