"""Data-parallel PSPNet training step: 1 rank x 2 threads against 2 ranks x 1 thread, minipsp and torch.

    python -m benchmarks.distributed                       # PSPNet-18, global batch 4, 65 x 65 crops
    python -m benchmarks.distributed --layers 50 --crop 97 --rounds 2

Four configurations, each a fresh set of processes, run one after the other (and --rounds times,
interleaved, because the machine is shared and its speed drifts):
    minipsp 1 x 2   one process, 2 threads, the whole batch
    minipsp 2 x 1   mpiexec -n 2, 1 thread each, half the batch each, DDP + SyncBatchNorm
    torch   1 x 2   one process, 2 threads
    torch   2 x 1   2 processes (gloo), DDP with plain BatchNorm (torch's SyncBatchNorm runs on GPUs only)
For the 2-rank runs it prints the step time, the time spent in gradient/statistics Allreduces per step
and the bytes they moved (minipsp: counted by minipsp.distributed; torch: a gloo all_reduce of the
same gradient bytes, timed alone), and the ratio minipsp / torch for every row.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _env(threads):
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               NUMBA_NUM_THREADS=str(threads), PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""))
    return env


def batch(args, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(args.batch, 3, args.crop, args.crop)).astype(np.float32)
    y = rng.integers(0, args.classes, (args.batch, args.crop, args.crop)).astype(np.int64)
    return x, y


def _times(step, repeats):
    step()                                   # warm-up: Numba compiles, buffers are allocated
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# -- the workers (one per process) ----------------------------------------------------------------------
def worker_minipsp(args):
    import minipsp
    import minipsp.distributed as dist
    from minipsp.models import PSPNet
    from minipsp.nn import SyncBatchNorm
    from minipsp.nn.parallel import DistributedDataParallel
    from minipsp.optim import SGD

    dist.init_process_group()
    rank, world = dist.get_rank(), dist.get_world_size()
    minipsp.manual_seed(0)
    net = PSPNet(layers=args.layers, classes=args.classes, dropout=0.0)
    model = net
    if world > 1:
        model = DistributedDataParallel(SyncBatchNorm.convert_sync_batchnorm(net))
    optimizer = SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x, y = batch(args)
    share = args.batch // world
    xt, yt = minipsp.tensor(x[rank * share:(rank + 1) * share]), minipsp.tensor(y[rank * share:(rank + 1) * share])

    def step():
        _, main, aux = model(xt, yt)
        loss = main + 0.4 * aux
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()
    before = dict(dist.stats)
    seconds = _times(step, args.repeats)
    steps = args.repeats + 1
    comm = {k: (dist.stats[k] - before[k]) / steps for k in ("seconds", "bytes", "calls")}
    grad_bytes = sum(p.data.nbytes for p in net.parameters())
    alone = _alone_minipsp(dist, grad_bytes) if world > 1 else 0.0
    if rank == 0:
        print(json.dumps({"step": seconds, "comm_s": comm["seconds"], "comm_bytes": comm["bytes"],
                          "calls": comm["calls"], "grad_bytes": grad_bytes, "alone_s": alone}))


def _alone_minipsp(dist, nbytes, repeats=5):
    flat = np.ones(nbytes // 4, np.float32)
    dist.barrier()
    return _times(lambda: dist.all_reduce(flat), repeats)


def worker_torch(args):
    import torch
    import torch.distributed as tdist
    from torch.nn.parallel import DistributedDataParallel

    from benchmarks.torch_pspnet import TorchPSPNet

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    world = int(os.environ.get("PMI_SIZE", "1"))
    rank = int(os.environ.get("PMI_RANK", "0"))
    torch.manual_seed(0)
    net = TorchPSPNet(layers=args.layers, classes=args.classes, dropout=0.0)
    model = net
    if world > 1:
        tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{args.port}", rank=rank, world_size=world)
        model = DistributedDataParallel(net)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x, y = batch(args)
    share = args.batch // world
    xt, yt = torch.from_numpy(x[rank * share:(rank + 1) * share]), torch.from_numpy(y[rank * share:(rank + 1) * share])

    def step():
        _, main, aux = model(xt, yt)
        loss = main + 0.4 * aux
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    seconds = _times(step, args.repeats)
    grad_bytes = sum(p.numel() * 4 for p in net.parameters())
    alone = 0.0
    if world > 1:
        flat = torch.ones(grad_bytes // 4)
        tdist.barrier()
        alone = _times(lambda: tdist.all_reduce(flat), 5)
    if rank == 0:
        print(json.dumps({"step": seconds, "comm_s": None, "comm_bytes": grad_bytes if world > 1 else 0,
                          "calls": None, "grad_bytes": grad_bytes, "alone_s": alone}))
    if world > 1:
        tdist.destroy_process_group()


# -- the launcher ---------------------------------------------------------------------------------------
def launch(engine, ranks, args, port):
    threads = 2 // ranks
    command = [sys.executable, "-m", "benchmarks.distributed", "--worker", engine, "--layers", str(args.layers),
               "--classes", str(args.classes), "--crop", str(args.crop), "--batch", str(args.batch),
               "--repeats", str(args.repeats), "--port", str(port)]
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if ranks > 1:
        command = [mpiexec, "-n", str(ranks)] + command
    done = subprocess.run(command, capture_output=True, text=True, env=_env(threads), cwd=ROOT, timeout=args.timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=18)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--crop", type=int, default=65, help="(crop - 1) %% 8 == 0")
    parser.add_argument("--batch", type=int, default=4, help="global batch (split over the ranks)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1, help="run the four configurations this many times")
    parser.add_argument("--timeout", type=int, default=600)
    parser.add_argument("--worker", choices=["minipsp", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=29512, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return (worker_minipsp if args.worker == "minipsp" else worker_torch)(args)

    configs = [("minipsp", 1), ("minipsp", 2), ("torch", 1), ("torch", 2)]
    results = {c: [] for c in configs}
    for round_ in range(args.rounds):
        for i, (engine, ranks) in enumerate(configs):
            results[(engine, ranks)].append(launch(engine, ranks, args, args.port + 10 * round_ + i))
    median = {c: {k: statistics.median(r[k] for r in rs) if rs[0][k] is not None else None for k in rs[0]}
              for c, rs in results.items()}

    print(f"PSPNet-{args.layers}, {args.classes} classes, global batch {args.batch} x 3 x {args.crop} x {args.crop}, "
          f"cores {os.cpu_count()}, median of {args.repeats} steps x {args.rounds} rounds (shared machine: noisy)")
    print(f"{'':22}{'minipsp s/step':>15}{'torch s/step':>14}{'ratio':>8}")
    for ranks, label in ((1, "1 rank x 2 threads"), (2, "2 ranks x 1 thread")):
        ours, theirs = median[("minipsp", ranks)]["step"], median[("torch", ranks)]["step"]
        print(f"{label:22}{ours:15.3f}{theirs:14.3f}{ours / theirs:7.2f}x")
    ours, theirs = median[("minipsp", 2)], median[("torch", 2)]
    print(f"speed-up 2 ranks / 1 rank: minipsp {median[('minipsp', 1)]['step'] / ours['step']:.2f}x, "
          f"torch {median[('torch', 1)]['step'] / theirs['step']:.2f}x")
    print(f"minipsp 2 ranks, per step: {ours['calls']:.0f} collectives, {ours['comm_bytes'] / 1e6:.2f} MB, "
          f"{ours['comm_s'] * 1e3:.1f} ms inside them ({100 * ours['comm_s'] / ours['step']:.1f}% of the step)")
    print(f"one Allreduce of the {ours['grad_bytes'] / 1e6:.2f} MB of gradients, alone: minipsp (MPI) "
          f"{ours['alone_s'] * 1e3:.2f} ms, torch (gloo) {theirs['alone_s'] * 1e3:.2f} ms, "
          f"ratio {ours['alone_s'] / theirs['alone_s']:.2f}x")


if __name__ == "__main__":
    main()
