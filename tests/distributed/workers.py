"""What each rank runs in the distributed tests: `python workers.py NAME OUT_DIR [args]` under mpiexec.

Each worker writes its results as rank<r>.npz in OUT_DIR; the tests (in the pytest process) read and
compare them. Models are tiny and float64 so that "equal" can mean 1e-10.
"""

from __future__ import annotations

import os
import signal
import sys

import numpy as np

import minipsp
import minipsp.distributed as dist
import minipsp.nn as nn
import minipsp.nn.functional as F
from minipsp.nn.parallel import DistributedDataParallel, out_of_sync
from minipsp.nn.sync_batch_norm import SyncBatchNorm
from minipsp.optim import SGD


def save(out, **arrays):
    np.savez(os.path.join(out, f"rank{dist.get_rank()}.npz"), **arrays)


def tiny_net(seed):
    """conv-BN-ReLU, dilated conv-BN-ReLU, 1x1 classifier (3 classes), float64."""
    minipsp.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Conv2d(4, 4, 3, padding=2, dilation=2, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Conv2d(4, 3, 1))
    return net.double()


def tiny_batch():
    rng = np.random.default_rng(7)
    images = rng.normal(1.0, 2.0, (4, 3, 6, 6))
    labels = rng.integers(0, 3, (4, 6, 6))
    # ignored pixels, as many in each half: the loss is a mean over each rank's valid pixels, and the mean of
    # the ranks' means is the global mean only when every rank has the same number of them
    labels[0, :2, :2] = labels[2, 3:5, 1:3] = 255
    return images, labels


def sgd_steps(model, params, images, labels, steps=3):
    """`steps` SGD steps (momentum, weight decay) on the same batch; the loss of each (global mean over ranks)."""
    optimizer = SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(model(minipsp.tensor(images)), minipsp.tensor(labels), ignore_index=255)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        value = np.array([loss.item()])
        dist.all_reduce(value, op="avg")
        losses.append(value[0])
    return np.array(losses)


def state_arrays(module, prefix):
    return {f"{prefix}/{k}": np.asarray(v, dtype=np.float64) for k, v in module.state_dict().items()}


# -- DDP + SyncBN == one process (tests 1 and 2) -----------------------------------------------------------
def ddp_equivalence(out):
    rank = dist.get_rank()
    images, labels = tiny_batch()
    mine = slice(2 * rank, 2 * rank + 2)
    results = {}
    # one process, the 4 images, plain BatchNorm2d (computed on every rank; no communication)
    reference = tiny_net(seed=0)
    results["ref_losses"] = sgd_steps(reference, reference.parameters(), images, labels)
    results.update(state_arrays(reference, "ref"))
    for sync in (True, False):
        net = tiny_net(seed=0 if rank == 0 else 1)   # rank 1 starts elsewhere: DDP's broadcast must fix that
        if sync:
            net = SyncBatchNorm.convert_sync_batchnorm(net)
        model = DistributedDataParallel(net)
        name = "sync" if sync else "plain"
        results[f"{name}_losses"] = sgd_steps(model, model.parameters(), images[mine], labels[mine])
        results.update(state_arrays(net, name))
        results[f"{name}_out_of_sync"] = np.array(out_of_sync(net) + ["-"])
        results[f"{name}_buckets"] = np.array(len(model.buckets))
    save(out, **results)


# -- SyncBN on unequal shards (test 3) -----------------------------------------------------------------------
def sync_bn_unequal(out):
    rank = dist.get_rank()
    rng = np.random.default_rng(3)
    x = rng.normal(5.0, 3.0, (4, 3, 5, 4))        # |mean| > std: the case a naive E[x^2] - E[x]^2 gets wrong
    dy = rng.normal(size=x.shape)
    mine = slice(0, 3) if rank == 0 else slice(3, 4)
    results = {}
    for momentum in (0.1, None):
        bn = nn.BatchNorm2d(3, momentum=momentum).double()
        sync = nn.BatchNorm2d(3, momentum=momentum).double()
        sync = SyncBatchNorm.convert_sync_batchnorm(sync)
        for layer in (bn, sync):
            layer.weight.data[...] = [0.5, 1.5, -2.0]
            layer.bias.data[...] = [0.1, 0.0, -0.3]
        tag = "m" if momentum else "cumulative"
        for step in range(2):                    # two steps: the running statistics move twice
            xb = minipsp.tensor(x + step, requires_grad=True)
            y = bn(xb)
            (y * minipsp.tensor(dy)).sum().backward()
            xs = minipsp.tensor(x[mine] + step, requires_grad=True)
            ys = sync(xs)
            (ys * minipsp.tensor(dy[mine])).sum().backward()
        results[f"{tag}_y"], results[f"{tag}_y_ref"] = ys.data, y.data[mine]
        results[f"{tag}_dx"], results[f"{tag}_dx_ref"] = xs.grad, xb.grad[mine]
        # weight and bias gradients: each rank has its own shard's part; the sum over ranks is BN's
        for name in ("weight", "bias"):
            total = getattr(sync, name).grad.copy()
            dist.all_reduce(total)
            results[f"{tag}_d{name}"], results[f"{tag}_d{name}_ref"] = total, getattr(bn, name).grad
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            results[f"{tag}_{name}"] = getattr(sync, name).data
            results[f"{tag}_{name}_ref"] = getattr(bn, name).data
    save(out, **results)


# -- SyncBN's backward against finite differences of the global loss (test 4) ---------------------------
def sync_bn_gradcheck(out, max_examples):
    """Hypothesis draws the shapes on every rank alike (derandomized); every decision is all-reduced, so the
    ranks pass or fail (and shrink) together."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    rank, world = dist.get_rank(), dist.get_world_size()
    checked = []

    @settings(max_examples=int(max_examples), derandomize=True, database=None, deadline=None)
    @given(counts=st.lists(st.integers(0, 3), min_size=world, max_size=world).filter(lambda c: sum(c) >= 1),
           C=st.integers(1, 3), H=st.integers(1, 3), W=st.integers(1, 3),
           eps=st.sampled_from([1e-5, 1e-3, 0.1]), seed=st.integers(0, 2**16))
    def check(counts, C, H, W, eps, seed):
        if sum(counts) * H * W < 2:
            return                                  # batch norm needs 2 values per channel
        rng = np.random.default_rng([seed, rank])
        x = rng.normal(2.0, 1.5, (counts[rank], C, H, W))
        v = rng.normal(size=x.shape)               # L = sum over ranks of sum(v * y)
        shared = np.random.default_rng(seed)
        weight, bias = shared.normal(size=C), shared.normal(size=C)

        def global_loss(x_local, w, b):
            layer = SyncBatchNorm(C, eps=eps).double()
            layer.weight.data[...], layer.bias.data[...] = w, b
            value = np.array([float((layer(minipsp.tensor(x_local)).data * v).sum())])
            dist.all_reduce(value)
            return value[0]

        layer = SyncBatchNorm(C, eps=eps).double()
        layer.weight.data[...], layer.bias.data[...] = weight, bias
        xt = minipsp.tensor(x, requires_grad=True)
        (layer(xt) * minipsp.tensor(v)).sum().backward()
        dweight, dbias = layer.weight.grad.copy(), layer.bias.grad.copy()
        dist.all_reduce(dweight)
        dist.all_reduce(dbias)

        # h = 1e-5: the truncation error (h^2) and the round-off (1e-16 |L| / h) are both ~1e-10 here
        h, worst = 1e-5, np.zeros(1)

        def compare(analytic, numeric):
            # relative error, with a floor for the gradients that are ~0 (a 2-value batch: y hardly moves)
            worst[0] = max(worst[0], abs(analytic - numeric) / max(abs(numeric), 1e-3))

        for owner in range(world):                 # every element of every rank's x, in one global order
            for i in range(counts[owner] * C * H * W):
                step = np.zeros(x.size)
                if rank == owner:
                    step[i] = h
                step = step.reshape(x.shape)
                numeric = (global_loss(x + step, weight, bias) - global_loss(x - step, weight, bias)) / (2 * h)
                if rank == owner:
                    compare(xt.grad.reshape(-1)[i], numeric)
        for c in range(C):                         # weight and bias, the same on every rank
            e = np.zeros(C)
            e[c] = h
            compare(dweight[c], (global_loss(x, weight + e, bias) - global_loss(x, weight - e, bias)) / (2 * h))
            compare(dbias[c], (global_loss(x, weight, bias + e) - global_loss(x, weight, bias - e)) / (2 * h))
        dist.all_reduce(worst, op="max")
        checked.append((tuple(counts), C, H, W, worst[0]))
        assert worst[0] < 1e-6, f"relative error {worst[0]:.3g} for counts {counts}, C={C}, H={H}, W={W}, eps={eps}"

    check()
    save(out, checked=np.array([c[-1] for c in checked]), counts=np.array([sum(c[0]) for c in checked]))


# -- evaluation split over ranks (test 6) ---------------------------------------------------------------
def evaluate_split(out, count):
    from minipsp.data import SyntheticScenes
    from minipsp.evaluate import evaluate
    from minipsp.metrics import SegmentationMetrics
    from minipsp.models import PSPNet
    from minipsp.train import val_transform

    confusions = []                          # the matrix behind every compute(); the last one is the result
    compute = SegmentationMetrics.compute
    SegmentationMetrics.compute = lambda self: confusions.append(self.confusion.copy()) or compute(self)
    minipsp.manual_seed(0)
    model = PSPNet(layers=18, width=8, classes=10, bins=(1, 2, 3, 6))
    dataset = SyntheticScenes(split="val", count=int(count), size=33, transform=val_transform())
    result = evaluate(model, dataset, 10, mode="whole", progress=False)
    save(out, confusion=confusions[-1], miou=np.array(result["miou"]), pixel_acc=np.array(result["pixel_acc"]),
         iou=np.asarray(result["iou"]))


# -- faults (test 8) -----------------------------------------------------------------------------------
def fault(out, how):
    """Rank 1 fails at its second step, while rank 0 goes on into the gradient Allreduce."""
    rank = dist.get_rank()
    images, labels = tiny_batch()
    model = DistributedDataParallel(SyncBatchNorm.convert_sync_batchnorm(tiny_net(seed=0)))
    optimizer = SGD(model.parameters(), lr=0.1)
    for step in range(50):
        if rank == 1 and step == 1:
            if how == "raise":
                raise FileNotFoundError("no such image: scene_0001.png")
            os.kill(os.getpid(), signal.SIGKILL)
        loss = F.cross_entropy(model(minipsp.tensor(images[:2])), minipsp.tensor(labels[:2]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


# -- the GPU path with one rank (NCCL refuses two ranks on one GPU) -------------------------------------
def gpu_world_of_one(out):
    import cupy

    index = dist.use_local_gpu()
    x = cupy.arange(6, dtype=cupy.float32)
    dist.all_reduce(x)                                   # NCCL (or host staging) with one rank: unchanged
    dist.broadcast(x, src=0)
    images, labels = tiny_batch()
    grads = []
    for wrap in (False, True):
        net = tiny_net(seed=0).to("cuda")
        model = DistributedDataParallel(SyncBatchNorm.convert_sync_batchnorm(net)) if wrap else net
        loss = F.cross_entropy(model(minipsp.tensor(images).to("cuda")), minipsp.tensor(labels).to("cuda"))
        loss.backward()
        grads.append([cupy.asnumpy(p.grad) for p in net.parameters()])
    save(out, device=np.array(index), x=cupy.asnumpy(x), nccl=np.array(dist._use_nccl()),
         grad_gap=np.array(max(np.abs(a - b).max() for a, b in zip(*grads))))


# -- DDP's reduction in the cases torch defines (eval mode, retain_graph, accumulation, unused) -----------------
class _Scaled(nn.Module):
    """y = sum(w * x) for a used weight w (2,), and a second weight used only where asked."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(np.zeros(2))
        self.extra = nn.Parameter(np.zeros(2))

    def forward(self, x, use_extra=False):
        y = (self.w * x).sum()
        return y + (self.extra * x).sum() if use_extra else y


def ddp_semantics(out):
    """Rank r's input is x = r + 1 (both entries), so d/dw = x on rank r: the mean over 2 ranks is 1.5."""
    rank = dist.get_rank()
    model = DistributedDataParallel(_Scaled())
    net = model.module
    x = minipsp.tensor(np.full(2, float(rank + 1)))
    results = {}
    model.eval()                                   # eval mode with grad enabled: reduced, as torch
    model(x).backward()
    results["eval"] = net.w.grad.copy()
    net.w.grad = None
    model.train()
    y = model(x)                                   # one forward, two backward: only the first is reduced
    y.backward(retain_graph=True)
    results["retain_first"] = net.w.grad.copy()
    y.backward()
    results["retain_second"] = net.w.grad.copy()
    net.w.grad = None
    model(x).backward()                            # accumulation: each backward reduces the accumulated .grad
    model(2 * x).backward()
    results["accumulate"] = net.w.grad.copy()
    net.w.grad = None
    with model.no_sync():                          # no_sync: the first stays local, the second reduces the sum
        model(x).backward()
    results["no_sync_local"] = net.w.grad.copy()
    model(2 * x).backward()
    results["no_sync"] = net.w.grad.copy()
    net.w.grad = None
    model(x, use_extra=rank == 1).backward()       # extra used on rank 1 only: zeros on rank 0
    results["unused_extra"] = net.extra.grad.copy()
    net.w.grad = net.extra.grad = None
    model(x).backward()                            # used by no rank: stays None
    results["never_used_is_none"] = np.array(net.extra.grad is None)
    with minipsp.no_grad():                        # no graph: the next backward-free forward prepares nothing
        model(x)
    save(out, **results)


class _TwoBuckets(nn.Module):
    """a and b, one bucket each (a tiny bucket_cap_mb): b's bucket comes first (reverse registration order)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(np.zeros(2))
        self.b = nn.Parameter(np.zeros(2))

    def forward(self, x, use_b):
        y = (self.a * x).sum()
        return (self.b * (10 * x)).sum() + y if use_b else y


def ddp_bucket_order(out):
    """b unused on rank 0: its bucket is launched only at the end of backward there, while rank 1 fills it
    first. The Allreduces must still pair bucket with bucket (torch launches buckets in order)."""
    rank = dist.get_rank()
    model = DistributedDataParallel(_TwoBuckets(), bucket_cap_mb=1e-6)
    x = minipsp.tensor(np.full(2, float(rank + 1)))
    model(x, use_b=rank == 1).backward()
    save(out, buckets=np.array(len(model.buckets)), a=model.module.a.grad, b=model.module.b.grad)


def ddp_wrap_broadcast(out):
    """Every parameter and buffer (running statistics, num_batches_tracked) is rank 0's after the wrap."""
    rank = dist.get_rank()
    net = tiny_net(seed=rank)
    for i in (1, 4):
        net[i].running_mean.data[...] = rank + 3.0
        net[i].running_var.data[...] = rank + 0.5
        net[i].num_batches_tracked.data[...] = 7 * rank
        net[i].weight.data[...] = rank + 1.5
        net[i].bias.data[...] = rank - 0.5
    before = state_arrays(net, "before")
    DistributedDataParallel(net)
    save(out, **before, **state_arrays(net, "after"))


if __name__ == "__main__":
    dist.init_process_group()
    name, out, *extra = sys.argv[1:]
    globals()[name](out, *extra)
