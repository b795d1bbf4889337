"""DistributedSampler: each rank's share of a dataset's indices for one epoch, as torch's.

    sampler = DistributedSampler(dataset)                 # rank and world from minipsp.distributed
    loader = DataLoader(dataset, batch_size=B // world, sampler=sampler, drop_last=True)
    for images, labels in loader: ...                     # the loader calls sampler.set_epoch itself

Epoch e on rank r of R:
    order   = permutation of range(n) drawn from default_rng([seed, e])   (range(n) if not shuffle)
    padded  = order + order[:pad]  so that R divides its length           (drop_last: the tail dropped)
    indices = padded[r::R]                                                 num_samples = len(padded) / R

The permutation is the one DataLoader(shuffle=True, seed=seed) serves in one process, and rank r
takes every R-th entry: the j-th local batch of size b = B / R on every rank together is exactly
the j-th global batch of size B of the one-process run (the same images, interleaved). So a loader's
position (batches served) and epoch mean the same on any number of ranks, and a run can resume on
another world size. Nothing random is kept: the same (seed, epoch) gives the same shards after a
restart; `set_epoch` changes the shuffle.
"""

from __future__ import annotations

import numpy as np

from minipsp import distributed as dist

__all__ = ["DistributedSampler"]


class DistributedSampler:
    """DistributedSampler(dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False).

    num_replicas, rank: default to the world size and this process's rank (a world of 1 without MPI);
    init_process_group() is called then if it was not (a sampler made before the model is wrapped must
    not take each rank for the whole world and serve it every image).
    drop_last: drop the tail that would make the shards unequal, instead of repeating the first
    indices to fill them (torch's behaviour; evaluation should not use a padded sampler)."""

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        if num_replicas is None or rank is None:
            dist.init_process_group()      # under mpiexec: the world's size and this rank, not (0, 1)
        default_rank, default_world = dist.rank_and_world()
        num_replicas = default_world if num_replicas is None else num_replicas
        rank = default_rank if rank is None else rank
        if not isinstance(num_replicas, (int, np.integer)) or num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be an int >= 1; got {num_replicas!r}")
        if not isinstance(rank, (int, np.integer)) or not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: rank must be an int in [0, {num_replicas - 1}]; got {rank!r}")
        n = len(dataset)
        if drop_last and n < num_replicas:
            raise ValueError(f"DistributedSampler: drop_last=True with {num_replicas} replicas but the dataset has "
                             f"only {n} samples: every shard would be empty")
        self.dataset = dataset
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        self.num_samples = n // self.num_replicas if drop_last else -(-n // self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Shuffle for `epoch` (every rank must use the same epoch)."""
        self.epoch = int(epoch)

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch, in the order they are served."""
        n = len(self.dataset)
        order = np.random.default_rng([self.seed, self.epoch]).permutation(n) if self.shuffle else np.arange(n)
        if self.drop_last:
            order = order[:self.total_size]
        else:
            order = np.resize(order, self.total_size)   # repeats the first entries (as often as needed)
        return order[self.rank:self.total_size:self.num_replicas]

    def __iter__(self):
        return iter(int(i) for i in self.indices())

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self):
        return (f"DistributedSampler({type(self.dataset).__name__} of {len(self.dataset)}, rank {self.rank} of "
                f"{self.num_replicas}, shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last}, "
                f"epoch={self.epoch})")
