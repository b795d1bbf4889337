"""DistributedSampler (test 5) and the DataLoader that takes it; no MPI needed (rank and world given)."""

import numpy as np
import pytest

from minipsp.data import DataLoader
from minipsp.data.sampler import DistributedSampler


class Numbers:
    """A dataset whose sample i is (image filled with i, label filled with i)."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.full((1, 2, 2), float(i), np.float32), np.full((2, 2), i, np.int64)


@pytest.mark.parametrize("n, world", [(10, 2), (11, 2), (11, 3), (4, 4), (7, 1)])
@pytest.mark.parametrize("drop_last", [False, True])
def test_shards_are_disjoint_and_cover_the_dataset(n, world, drop_last):
    shards = [list(DistributedSampler(Numbers(n), world, r, seed=5, drop_last=drop_last)) for r in range(world)]
    assert len({len(s) for s in shards}) == 1                          # equal shards
    everything = [i for s in shards for i in s]
    if drop_last:
        assert len(set(everything)) == len(everything) == n // world * world     # disjoint, the tail dropped
    else:
        assert set(everything) == set(range(n))                       # together the dataset
        assert len(everything) == -(-n // world) * world               # padded by repeating the first ones
        assert len(everything) - len(set(everything)) == len(everything) - n


def test_same_after_a_restart_and_set_epoch_reshuffles():
    first = [list(DistributedSampler(Numbers(20), 2, r, seed=3)) for r in (0, 1)]
    again = [list(DistributedSampler(Numbers(20), 2, r, seed=3)) for r in (0, 1)]
    assert first == again
    sampler = DistributedSampler(Numbers(20), 2, 0, seed=3)
    sampler.set_epoch(1)
    assert list(sampler) != first[0] and sorted(sampler) != sorted(first[0])
    assert list(DistributedSampler(Numbers(20), 2, 0, shuffle=False)) == list(range(0, 20, 2))


def test_ranks_batches_together_are_the_one_process_batches():
    """Local batch j of b = B / R images on every rank == global batch j of B in one process (as sets)."""
    data, B, R = Numbers(23), 6, 3
    single = DataLoader(data, batch_size=B, shuffle=True, drop_last=True, seed=9)
    ranks = [DataLoader(data, batch_size=B // R, drop_last=True, seed=9,
                        sampler=DistributedSampler(data, R, r, seed=9, drop_last=True)) for r in range(R)]
    assert all(len(loader) == len(single) for loader in ranks)
    for _epoch in range(2):                                             # the loader sets the sampler's epoch
        for whole, *parts in zip(single, *ranks):
            got = sorted(int(i) for images, _ in parts for i in images[:, 0, 0, 0])
            assert got == sorted(int(i) for i in whole[0][:, 0, 0, 0])


def test_bad_arguments():
    with pytest.raises(ValueError, match="rank"):
        DistributedSampler(Numbers(4), 2, 2)
    with pytest.raises(ValueError, match="num_replicas"):
        DistributedSampler(Numbers(4), 0, 0)
    with pytest.raises(ValueError, match="drop_last=True with 3 replicas but the dataset has only 2"):
        DistributedSampler(Numbers(2), 3, 0, drop_last=True)
    with pytest.raises(ValueError, match="sampler"):
        DataLoader(Numbers(4), 2, shuffle=True, sampler=DistributedSampler(Numbers(4), 2, 0))


@pytest.mark.parametrize("n, world, drop_last", [(10, 2, False), (11, 3, False), (2, 5, False), (7, 4, False),
                                                 (1, 3, False), (10, 2, True), (11, 3, True), (7, 4, True)])
def test_unshuffled_shards_are_torchs(n, world, drop_last):
    """Padding (the first indices repeated, as often as needed) and striding as torch's, index for index.
    (drop_last with fewer samples than ranks: torch serves empty shards, minipsp refuses: test_bad_arguments.)"""
    torch_data = pytest.importorskip("torch.utils.data")
    for r in range(world):
        theirs = list(torch_data.DistributedSampler(range(n), world, r, shuffle=False, drop_last=drop_last))
        ours = DistributedSampler(Numbers(n), world, r, shuffle=False, drop_last=drop_last)
        assert list(ours) == theirs and len(ours) == len(theirs)


def test_default_rank_and_world_under_mpiexec(tmp_path):
    """Made before anything else under mpiexec -n 2, the sampler finds the world (init_process_group), so
    the two ranks get disjoint halves, not every image each."""
    import sys

    from mpi_helpers import run_ranks  # (skips this test alone without mpi4py)

    code = ("import sys\n"
            "from minipsp.data.sampler import DistributedSampler\n"
            "s = DistributedSampler(list(range(6)), shuffle=False)\n"
            "open(f'{sys.argv[1]}/rank{s.rank}.txt', 'w').write(f'{s.num_replicas} {list(s)}')\n")
    run_ranks(2, [sys.executable, "-c", code, str(tmp_path)], timeout=120)
    assert (tmp_path / "rank0.txt").read_text() == "2 [0, 2, 4]"
    assert (tmp_path / "rank1.txt").read_text() == "2 [1, 3, 5]"
