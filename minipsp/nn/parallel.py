"""DistributedDataParallel: the same model on every rank, each on its own share of the batch.

    dist.init_process_group()
    model = DistributedDataParallel(SyncBatchNorm.convert_sync_batchnorm(net))
    loss = criterion(model(x_local), y_local)     # x_local: this rank's images
    loss.backward()                               # every .grad is now the mean over ranks
    optimizer.step()                              # the same step on every rank: the weights stay equal

Why it is exact: with the loss of rank r the mean over its B images and every rank holding B,
the global loss is L = (1/R) sum_r L_r, so dL/dw = (1/R) sum_r dL_r/dw: an Allreduce (sum) of
the gradients divided by the world size R. (With sync batch norm the L_r depend on every rank's
images; SyncBatchNorm's backward reduces the cross-rank terms, so dL_r/dw here already holds them.)

How (torch's design, smaller):
- At wrap time rank 0's parameters and buffers are broadcast: every rank starts from the same model.
- Parameters are grouped, in reverse order of registration (roughly the order backward finishes
  them), into flat buckets of at most bucket_cap_mb per device and dtype. A ResNet-50's ~160
  parameter tensors make a handful of buckets: a handful of Allreduces per step, not 160.
- A post-accumulate-grad hook on each parameter counts its bucket down; a full bucket is copied into
  one flat array and its Allreduce starts (asynchronously on the CPU, through MPI Iallreduce) while
  backward goes on, buckets always in the same order on every rank (MPI pairs collectives by their
  order, and a rank with an unused parameter fills its buckets in another). A callback queued in
  the autograd engine waits for all of them at the end of backward and writes the means back into
  the .grad arrays.
- A parameter that got no gradient on some rank (an unused head) counts as zeros there; one flag
  per parameter is reduced with the bucket, and a parameter that no rank used keeps .grad None.
- broadcast_buffers (default True, as torch): rank 0's buffers are broadcast before every forward,
  so that plain BatchNorm's running statistics stay those of rank 0 (SyncBatchNorm keeps them
  equal anyway).

parameters(), state_dict() and load_state_dict() are the wrapped module's (plain keys, no
"module." prefix: a checkpoint loads into an unwrapped model); train()/eval() reach it too.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from minipsp import distributed as dist
from minipsp.autograd import engine
from minipsp.autograd.grad_mode import is_grad_enabled
from minipsp.backend import device_of, get_array_module, to_numpy
from minipsp.nn.module import Module

__all__ = ["DistributedDataParallel", "data_parallel", "out_of_sync"]


class _Bucket:
    """Parameters whose gradients are reduced together as one flat array."""

    def __init__(self, params):
        self.params = params
        self.sizes = [p.data.size for p in params]
        self.pending = len(params)    # hooks still to fire in this backward
        self.flat = None              # grads, then one used-flag per parameter
        self.work = None

    def reset(self):
        self.pending, self.flat, self.work = len(self.params), None, None

    def launch(self):
        """Copy the gradients (zeros where a parameter has none) and flags into one array; start its Allreduce."""
        first = self.params[0]
        xp = get_array_module(first.data)
        total = sum(self.sizes)
        flat = xp.zeros(total + len(self.params), dtype=first.data.dtype)
        offset = 0
        for i, (param, size) in enumerate(zip(self.params, self.sizes)):
            if param.grad is not None:
                flat[offset:offset + size] = param.grad.reshape(-1)
                flat[total + i] = 1
            offset += size
        self.flat = flat
        self.work = dist.all_reduce(flat, op="sum", async_op=True)

    def finish(self, world):
        """Wait for the Allreduce; every .grad becomes the mean over ranks (None where no rank had one)."""
        self.work.wait()
        total = sum(self.sizes)
        mean = self.flat[:total] / world
        used = to_numpy(self.flat[total:])     # one copy to the host, not one GPU sync per parameter
        offset = 0
        for i, (param, size) in enumerate(zip(self.params, self.sizes)):
            param.grad = mean[offset:offset + size].reshape(param.data.shape) if float(used[i]) > 0 else None
            offset += size
        self.reset()


class DistributedDataParallel(Module):
    """DistributedDataParallel(module, bucket_cap_mb=25, broadcast_buffers=True), as torch's.

    After each loss.backward() of a forward made with grad enabled (in train or eval mode, as torch),
    every parameter's .grad is the mean of the ranks' gradients. Calls init_process_group() if needed.

    What torch's DDP does, and so does this one:
    - backward twice through one forward (retain_graph=True): only the first is reduced; the second
      adds this rank's own gradients (a DDP forward prepares one reduction).
    - two forward + backward pairs without zero_grad (accumulation): each backward reduces the
      accumulated .grad, so the result is the mean of the sum; no_sync() skips the first reduction.
    - a parameter unused on some ranks counts as zeros there (torch needs find_unused_parameters=True
      for that); one that no rank used keeps its .grad (None if it had none).
    - a forward under no_grad() prepares nothing: evaluation costs no communication.
    """

    def __init__(self, module, bucket_cap_mb: float = 25, broadcast_buffers: bool = True):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: module must be a minipsp.nn.Module; got {type(module).__name__}")
        if not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be positive; got {bucket_cap_mb!r}")
        dist.init_process_group()
        self.module = module
        self.broadcast_buffers = broadcast_buffers
        self.bucket_cap_mb = bucket_cap_mb
        self.world_size = dist.get_world_size()
        object.__setattr__(self, "require_backward_grad_sync", True)
        object.__setattr__(self, "_expect_backward", False)
        for tensor in list(module.parameters()) + [b for b in module.buffers() if b is not None]:
            dist.broadcast(tensor, src=0)
        object.__setattr__(self, "_buckets", self._make_buckets(bucket_cap_mb))
        object.__setattr__(self, "_next_bucket", 0)            # the next bucket to launch, in order
        for bucket in self._buckets:
            for param in bucket.params:
                engine.register_post_accumulate_grad_hook(param, self._make_hook(bucket))

    def _make_buckets(self, cap_mb):
        cap = cap_mb * 1024 * 1024
        buckets, current, current_bytes, current_key = [], [], 0, None
        for param in reversed([p for p in self.module.parameters() if p.requires_grad]):
            key = (device_of(param.data), param.data.dtype)
            if current and (key != current_key or current_bytes + param.data.nbytes > cap):
                buckets.append(_Bucket(current))
                current, current_bytes = [], 0
            current.append(param)
            current_bytes += param.data.nbytes
            current_key = key
        if current:
            buckets.append(_Bucket(current))
        return buckets

    def _make_hook(self, bucket):
        def hook(param):
            if not self._expect_backward:
                return
            if all(b.pending == len(b.params) for b in self._buckets):   # the first hook of this backward
                engine.queue_callback(self._finish_backward)
            bucket.pending -= 1
            self._launch_ready()
        return hook

    def _launch_ready(self):
        """Start the Allreduces of the full buckets, strictly in bucket order: MPI pairs the ranks' collectives
        by their order, and a rank where a parameter went unused fills its buckets in another order (torch
        launches in order too). A full bucket behind one still filling waits for it."""
        while self._next_bucket < len(self._buckets) and self._buckets[self._next_bucket].pending == 0:
            self._buckets[self._next_bucket].launch()
            object.__setattr__(self, "_next_bucket", self._next_bucket + 1)

    def _finish_backward(self):
        """End of backward: reduce the buckets some parameter never filled, then wait for all of them."""
        object.__setattr__(self, "_expect_backward", False)
        for bucket in self._buckets[self._next_bucket:]:      # in order, as _launch_ready
            bucket.launch()
        object.__setattr__(self, "_next_bucket", 0)
        for bucket in self._buckets:
            bucket.finish(self.world_size)

    @property
    def buckets(self):
        """The parameter buckets, each a list of Parameters reduced by one Allreduce."""
        return [list(b.params) for b in self._buckets]

    # -- calling ---------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        for bucket in self._buckets:
            bucket.reset()
        object.__setattr__(self, "_next_bucket", 0)
        if self.broadcast_buffers and self.module.training:
            self._broadcast_buffers()
        # as torch: any forward that records a graph is followed by a reduced backward, train or eval mode
        # (an eval-mode fine-tune with frozen batch norm must still average its gradients)
        sync = is_grad_enabled() and self.require_backward_grad_sync
        object.__setattr__(self, "_expect_backward", sync)
        return self.module(*args, **kwargs)

    def _broadcast_buffers(self):
        """Rank 0's floating-point buffers to every rank, one flat Bcast per device and dtype."""
        groups = {}
        for buffer in self.module.buffers():
            if buffer is not None and buffer.data.dtype.kind == "f":
                groups.setdefault((device_of(buffer.data), buffer.data.dtype), []).append(buffer)
        for buffers in groups.values():
            xp = get_array_module(buffers[0].data)
            flat = xp.concatenate([b.data.reshape(-1) for b in buffers])
            dist.broadcast(flat, src=0)
            offset = 0
            for b in buffers:
                b.data[...] = flat[offset:offset + b.data.size].reshape(b.data.shape)
                offset += b.data.size

    @contextmanager
    def no_sync(self):
        """Backward passes inside accumulate local gradients only; the next synced one reduces the sum."""
        previous = self.require_backward_grad_sync
        object.__setattr__(self, "require_backward_grad_sync", False)
        try:
            yield
        finally:
            object.__setattr__(self, "require_backward_grad_sync", previous)

    # -- the wrapped module's state (plain keys) -------------------------------------------------
    def parameters(self, recurse=True):
        return self.module.parameters(recurse)

    def named_parameters(self, prefix="", recurse=True):
        return self.module.named_parameters(prefix, recurse)

    def state_dict(self):
        return self.module.state_dict()

    def load_state_dict(self, state_dict, strict=True):
        return self.module.load_state_dict(state_dict, strict)

    def extra_repr(self):
        sizes = ", ".join(str(len(b.params)) for b in self._buckets)
        return f"world_size={self.world_size}, buckets=[{sizes}] parameters"


def data_parallel(model, sync_bn: bool = True):
    """The trainer's wrapping in a world > 1: SyncBatchNorm for every BatchNorm2d (unless sync_bn=False),
    then DistributedDataParallel. The model itself keeps its Parameter objects (and plain state_dict keys)."""
    from minipsp.nn.sync_batch_norm import SyncBatchNorm

    if sync_bn:
        model = SyncBatchNorm.convert_sync_batchnorm(model)
    return DistributedDataParallel(model)


def gather_rng_states():
    """minipsp's CPU generator state (dropout masks): rank 0's alone in a world of 1, else every rank's (a list)."""
    import minipsp.random

    state = minipsp.random.get_rng_state()
    return state if dist.rank_and_world()[1] == 1 else dist.all_gather_object(state)


def restore_rng_states(saved, seed: int, iteration: int) -> None:
    """Restore what gather_rng_states saved. On the world size it was saved with, exactly (each rank its own);
    on another, rank r draws from a fresh stream (seed, r, iteration): the dropout masks then differ from an
    uninterrupted run's, which no world size change can avoid (another rank holds each image)."""
    import minipsp.random

    rank, world = dist.rank_and_world()
    states = saved if isinstance(saved, list) else [saved]
    if len(states) == world:
        minipsp.random.set_rng_state(states[rank])
    else:
        minipsp.random.manual_seed(int(np.random.SeedSequence([seed, rank, iteration]).generate_state(1)[0]))


def seed_ranks(seed: int) -> None:
    """Give each rank its own dropout stream, (seed, rank), after the weights are drawn (in a world > 1)."""
    import minipsp.random

    rank, world = dist.rank_and_world()
    if world > 1:
        minipsp.random.manual_seed(int(np.random.SeedSequence([seed, rank]).generate_state(1)[0]))


def out_of_sync(module) -> list[str]:
    """Names of the parameters and buffers that are not bit-identical on every rank (empty: in sync).

    A collective, so every rank must call it. After DDP steps the list should be empty; plain
    BatchNorm's running statistics are the exception without broadcast_buffers."""
    names = []
    for name, value in module.state_dict().items():
        array = np.asarray(value, dtype=np.float64).reshape(-1)
        low, high = array.copy(), array.copy()
        dist.all_reduce(low, op="min")
        dist.all_reduce(high, op="max")
        if not np.array_equal(low, high, equal_nan=True):
            names.append(name)
    return names
