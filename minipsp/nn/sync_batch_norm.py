"""SyncBatchNorm: batch norm whose statistics are those of the global batch, over every rank.

The paper (section 5.1) trains with batch 16 spread over GPUs and insists that "batchsize in the
batch normalization layer is of great importance": with 2 images per GPU, a per-GPU batch norm
normalises each GPU's images by a mean and variance from 2 images, a noisy estimate that also
differs from what the model sees at test time. SyncBatchNorm computes them over all ranks' images.

Forward, per channel c, rank r holding n_r values (its N_r * H * W), M = sum_r n_r:
    local:   mean_r = (1/n_r) sum x,   M2_r = sum (x - mean_r)^2           (accumulated in float64)
    gather:  (n_r, mean_r, M2_r) from every rank: ONE Allgather of 2C + 1 numbers per rank
    merge:   mean = sum_r n_r mean_r / M
             M2   = sum_r [ M2_r + n_r (mean_r - mean)^2 ]                   (Chan et al. 1979)
             var  = M2 / M  (biased, for normalising);  M2 / (M - 1) (unbiased, for running_var)
    y = (x - mean) * rstd * weight + bias,   rstd = 1 / sqrt(var + eps)
Why Chan's merge and not sum(x) and sum(x^2): var = E[x^2] - E[x]^2 subtracts two large, nearly
equal numbers when |mean| >> std (activations after ReLU, images in 0..255), and float32 loses
every significant digit of the variance; each M2_r is a sum of squared deviations from its own
mean (never negative, accurate), and the merge adds only non-negative terms. The counts make
unequal shards exact (a last batch of 3 images on one rank and 1 on another). Every rank merges
the same gathered numbers in the same order, so mean and var, hence the running statistics, are
bit-identical on every rank.

Backward (the global loss L sums over all ranks' outputs; xhat = (x - mean) * rstd):
    dbias   = sum dy,  dweight = sum dy * xhat      (this rank's sums; DDP averages them over ranks)
    g1 = sum_all ranks dy,  g2 = sum_all ranks dy * xhat     ONE Allreduce of 2C numbers
    dx = weight * rstd / M * (M * dy - g1 - xhat * g2)
which is batch norm's usual backward with the sums taken over the global batch (ChainerMN's and
torch's recipe): the mean and variance depend on every rank's x, so each rank's dx needs the sums
of all ranks' dy.

In eval mode, or in a world of 1, it is BatchNorm2d exactly (the same function is called).
"""

from __future__ import annotations

from minipsp import distributed as dist
from minipsp import kernels
from minipsp.autograd.function import Function
from minipsp.backend import get_array_module
from minipsp.nn.functional.batch_norm import _affine_params, _as_4d
from minipsp.nn.layers import BatchNorm2d
from minipsp.nn.module import Module

__all__ = ["SyncBatchNorm", "sync_batch_norm"]

AXES = (0, 2, 3)  # everything but the channel


def _per_channel(v):
    return v.reshape(1, -1, 1, 1)


def local_moments(x4):
    """This rank's (count, mean, M2) per channel of x4 (N_r, C, H, W), accumulated in float64.

    M2 = sum (x - mean)^2 is formed around c, the mean rounded to x's dtype, so that no float64 copy of
    x4 is made: sum (x - c)^2 = M2 + n (mean - c)^2 gives M2 exactly from the shifted sum."""
    xp = get_array_module(x4)
    n = x4.shape[0] * x4.shape[2] * x4.shape[3]
    mean = x4.sum(axis=AXES, dtype=xp.float64) / max(n, 1)                    # C
    center = mean.astype(x4.dtype)
    d = x4 - _per_channel(center)                                              # N,C,H,W in x's dtype
    m2 = (d * d).sum(axis=AXES, dtype=xp.float64) - n * (mean - center) ** 2  # C
    return n, mean, xp.maximum(m2, 0.0)


def global_mean_var(x4):
    """(mean, biased var, global count M) per channel over every rank's x4 (N_r, C, H, W), float64."""
    xp = get_array_module(x4)
    C = x4.shape[1]
    n, mean_r, m2_r = local_moments(x4)
    mine = xp.concatenate([xp.asarray([float(n)]), mean_r, m2_r])              # 2C + 1
    world = dist.get_world_size()
    gathered = [xp.empty_like(mine) for _ in range(world)]
    dist.all_gather(gathered, mine)
    table = xp.stack(gathered)                                                 # R, 2C + 1
    counts, means, m2s = table[:, :1], table[:, 1:C + 1], table[:, C + 1:]     # R,1  R,C  R,C
    M = float(counts.sum())
    mean = (counts * means).sum(axis=0) / M                                    # C
    m2 = (m2s + counts * (means - mean) ** 2).sum(axis=0)                      # C
    return mean, m2 / M, M


class SyncBatchNormFunction(Function):
    """Training-mode batch norm over the global batch; forward gathers, backward reduces (see above).

    Once the global mean and variance are known, normalising is an affine map per channel, which is what
    batch norm's eval-mode kernels compute (kernels/batch_norm: Numba on the CPU, CUDA on the GPU); their
    backward gives this rank's sum(dy) and sum(dy * xhat) and dy * weight * rstd, to which the terms of
    the statistics are added once the sums are reduced over the world."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, momentum, eps):
        xp = get_array_module(x)
        K = kernels.variant("batch_norm", x)
        x4 = _as_4d(x)
        w, b = _affine_params(x, weight, bias)
        mean, var, M = global_mean_var(x4)
        if M <= 1:
            raise ValueError(f"SyncBatchNorm: expected more than 1 value per channel over all ranks when training, "
                             f"got {int(M)} (input size {tuple(x.shape)} on this rank)")
        mean_x, var_x = mean.astype(x.dtype), var.astype(x.dtype)             # what the kernels take
        # a rank may hold no image at all (the last, short batch): it still joins the collectives
        y = K.batch_norm_forward_eval(x4, w, b, mean_x, var_x, eps) if x4.size else xp.empty_like(x4)
        if running_mean is not None:
            running_mean[...] = (1 - momentum) * running_mean + momentum * mean
        if running_var is not None:
            running_var[...] = (1 - momentum) * running_var + momentum * var * (M / (M - 1))
        # xhat is recomputed in backward from x, mean and var rather than saved (one array less).
        ctx.save_for_backward(x4, w, mean_x, var_x)
        ctx.shape, ctx.M, ctx.eps = x.shape, M, eps
        ctx.has_weight, ctx.has_bias = weight is not None, bias is not None
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, dy):
        x4, w, mean, var = ctx.saved
        xp = get_array_module(x4)
        K = kernels.variant("batch_norm", x4)
        C, M, dtype = x4.shape[1], ctx.M, x4.dtype
        dy4 = dy.reshape(x4.shape)
        # dx_local = dy * weight * rstd; sum_dy_xhat, sum_dy: this rank's sums (dweight, dbias)
        if x4.size:
            dx_local, sum_dy_xhat, sum_dy = K.batch_norm_backward_eval(dy4, x4, w, mean, var, ctx.eps)
        else:
            dx_local, sum_dy_xhat, sum_dy = xp.empty_like(x4), xp.zeros(C, dtype), xp.zeros(C, dtype)
        sums = xp.concatenate([sum_dy, sum_dy_xhat]).astype(xp.float64)       # 2C
        dist.all_reduce(sums, op="sum")                                        # over every rank
        g1, g2 = sums[:C], sums[C:]
        rstd = 1.0 / xp.sqrt(var.astype(xp.float64) + ctx.eps)                # as the kernels compute it
        # dx = weight * rstd / M * (M dy - g1 - xhat g2) = dx_local - k * (g1 + (x - mean) * rstd * g2)
        k = w * rstd / M
        dx = dx_local - _per_channel((k * g1).astype(dtype)) \
            - (x4 - _per_channel(mean)) * _per_channel((k * rstd * g2).astype(dtype))
        return (dx.astype(dtype, copy=False).reshape(ctx.shape),
                sum_dy_xhat if ctx.has_weight else None,
                sum_dy if ctx.has_bias else None,
                None, None, None, None)


def sync_batch_norm(input, running_mean, running_var, weight=None, bias=None, momentum=0.1, eps=1e-5):
    """Training-mode batch norm with the statistics of every rank's input (a collective: every rank calls it).

    input (N_r, C), (N_r, C, L) or (N_r, C, H, W), N_r may differ between ranks (even be 0);
    running_mean, running_var (C,) arrays or None, updated in place identically on every rank."""
    from minipsp.nn.functional.batch_norm import _stat_array
    from minipsp.tensor import Tensor

    if not isinstance(input, Tensor):
        raise TypeError(f"sync_batch_norm: input must be a Tensor; got {type(input).__name__}")
    if input.ndim not in (2, 3, 4):
        raise ValueError(f"sync_batch_norm: input must be 2-D, 3-D or 4-D (N, C, ...); got shape {tuple(input.shape)}")
    C = input.shape[1]
    device = "cuda" if type(input.data).__module__.startswith("cupy") else "cpu"
    running_mean = _stat_array("running_mean", running_mean, C, device)
    running_var = _stat_array("running_var", running_var, C, device)
    return SyncBatchNormFunction.apply(input, weight, bias, running_mean, running_var, float(momentum), float(eps))


class SyncBatchNorm(BatchNorm2d):
    """SyncBatchNorm(num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
    process_group=None), as torch's: BatchNorm2d with the global batch's statistics in training.

    Same parameters, buffers and state_dict keys as BatchNorm2d, so checkpoints move freely between
    the two. Only the world's group is supported (process_group=None)."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 process_group=None):
        if process_group is not None:
            raise ValueError("SyncBatchNorm: only process_group=None (the whole world) is supported")
        super().__init__(num_features, eps, momentum, affine, track_running_stats)

    def forward(self, x):
        if x.ndim not in (2, 3, 4):
            raise ValueError(f"SyncBatchNorm: expected a 2-D, 3-D or 4-D input; got shape {tuple(x.shape)}")
        if not self.training:
            return self._plain_forward(x)          # the running statistics: no communication
        dist.init_process_group()                  # (once) under mpiexec the world, not a world of 1 by default
        if dist.get_world_size() == 1:
            return self._plain_forward(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.data = self.num_batches_tracked.data + 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.data)
        return sync_batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, factor, self.eps)

    def _plain_forward(self, x):
        """BatchNorm2d's forward (which checks for 4-D), for 2-D and 3-D inputs too."""
        if x.ndim == 4:
            return super().forward(x)
        shape = x.shape
        return super().forward(x.reshape(*shape, *(1,) * (4 - x.ndim))).reshape(*shape)

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """Replace every BatchNorm2d in `module` by a SyncBatchNorm holding the same Parameter and buffer
        objects (an optimiser built before still trains them); returns the module (or the new layer, if
        `module` is itself a BatchNorm2d). As torch.nn.SyncBatchNorm.convert_sync_batchnorm."""
        if isinstance(module, BatchNorm2d) and not isinstance(module, SyncBatchNorm):
            return cls._from_batch_norm(module, process_group)
        if not isinstance(module, Module):
            raise TypeError(f"convert_sync_batchnorm: expected a Module; got {type(module).__name__}")
        for name, child in list(module._modules.items()):
            if child is not None:
                # written into the table directly: setattr would move the entry to the end (Sequential's order)
                module._modules[name] = cls.convert_sync_batchnorm(child, process_group)
        return module

    @classmethod
    def _from_batch_norm(cls, bn, process_group):
        sync = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats, process_group)
        for name in ("weight", "bias"):
            sync._parameters[name] = bn._parameters[name]
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            sync._buffers[name] = bn._buffers[name]
        object.__setattr__(sync, "training", bn.training)
        return sync
