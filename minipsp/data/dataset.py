"""Dataset and DataLoader: samples in, batches of stacked NumPy arrays out, reproducible and resumable.

A `Dataset` is anything with `__len__` and `__getitem__(index) -> (image, label)`. Subclasses here
implement `load(index)` (the raw sample); the base class applies the paired `transform`, passing it a
random generator so that the random augmentation of a sample can be fixed from outside.

The `DataLoader` makes the whole input pipeline a pure function of (seed, epoch, position):

    order of epoch e          = permutation drawn from default_rng([seed, e])       (if shuffle)
    augmentation of sample i  = transform(..., rng=default_rng([seed, e, i]))

so no hidden random state needs saving: `loader.state_dict()` is just {"seed", "epoch", "position"}
and a run that reloads it sees exactly the batches the uninterrupted run would have seen.

Batches: images stacked to (N, 3, H, W) float32 (after `ToTensor`), labels to (N, H, W) int64.
"""

from __future__ import annotations

import numpy as np


class DatasetError(ValueError):
    """A dataset's files are not what they should be: the message names the file and what is wrong."""


class Dataset:
    """Base class: subclasses implement `__len__` and `load(index) -> (image, label)`.

    `dataset[i]` is `load(i)` passed through `transform` (if any). `get(i, rng)` does the same with a
    given random generator; the DataLoader uses it so augmentations are reproducible.
    """

    transform = None

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def load(self, index: int):
        raise NotImplementedError(f"{type(self).__name__} must define load(index) or __getitem__(index)")

    def get(self, index: int, rng=None):
        """load(index), then transform(image, label, rng=rng) when there is a transform."""
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range for {type(self).__name__} of length {n}")
        image, label = self.load(index % n)
        if self.transform is not None:
            image, label = self.transform(image, label, rng=rng)
        return image, label

    def __getitem__(self, index: int):
        return self.get(index)


def collate(samples) -> tuple:
    """[(image, label), ...] -> (images (N, ...) float32, labels (N, ...) int64), stacked with NumPy."""
    samples = list(samples)
    bad = next((s for s in samples if not (isinstance(s, (tuple, list)) and len(s) == 2)), None)
    if bad is not None:         # zip(*samples) would say "'int' object is not iterable"
        raise TypeError(f"collate: each sample must be an (image, label) pair, as a Dataset's __getitem__ "
                        f"returns; got {type(bad).__name__} {repr(bad)[:60]}")
    images, labels = zip(*samples)
    image_shapes, label_shapes = {np.shape(a) for a in images}, {np.shape(a) for a in labels}
    if len(image_shapes) > 1 or len(label_shapes) > 1:
        raise ValueError(f"cannot batch samples of different sizes: got image shapes {sorted(image_shapes)} "
                         f"and label shapes {sorted(label_shapes)}; crop or resize them to one size "
                         "(Crop / Resize transforms) or use batch_size=1")
    return np.stack(images).astype(np.float32, copy=False), np.stack(labels).astype(np.int64, copy=False)


class DataLoader:
    """DataLoader(dataset, batch_size=1, shuffle=False, drop_last=False, seed=0, sampler=None).

    Iterating gives the remaining batches of the current epoch (from `position`), then moves to the
    next epoch. `len(loader)` is the number of batches in one epoch. A `sampler` (e.g. a
    DistributedSampler: this rank's share) gives the indices instead of shuffle; the loader calls its
    set_epoch(epoch) before each epoch.
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 seed: int = 0, sampler=None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be an int >= 1; got {batch_size!r}")
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(f"DataLoader: dataset must have __len__ and __getitem__ (a minipsp.data.Dataset); "
                            f"got {type(dataset).__name__}")
        if len(dataset) == 0:
            raise ValueError(f"the dataset {type(dataset).__name__} is empty")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler and shuffle=True are mutually exclusive (the sampler shuffles)")
        self.sampler = sampler
        if drop_last and self._count(dataset) < batch_size:
            raise ValueError(f"drop_last=True with batch_size={batch_size} but the dataset has only "
                             f"{self._count(dataset)} samples: every epoch would be empty")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = int(seed)
        self.epoch = 0
        self.position = 0  # batches of the current epoch already handed out

    def _count(self, dataset) -> int:
        """Samples per epoch: the sampler's share, or the whole dataset."""
        return len(self.sampler) if self.sampler is not None else len(dataset)

    def __len__(self) -> int:
        n = self._count(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """The sample indices of `epoch`, in the order they are served."""
        n = len(self.dataset)
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
            return np.fromiter(iter(self.sampler), dtype=np.int64)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def set_epoch(self, epoch: int) -> None:
        """Jump to the start of `epoch`."""
        self.epoch, self.position = int(epoch), 0

    def _sample(self, index: int, epoch: int):
        rng = np.random.default_rng([self.seed, epoch, index])
        if hasattr(self.dataset, "get"):
            return self.dataset.get(index, rng=rng)
        return self.dataset[index]  # a plain sequence of (image, label) pairs

    def __iter__(self):
        if self.position >= len(self):  # saved just after an epoch's last batch: start the next one
            self.epoch, self.position = self.epoch + 1, 0
        order = self.order(self.epoch)
        while self.position < len(self):
            start = self.position * self.batch_size
            indices = order[start:start + self.batch_size]
            batch = collate([self._sample(int(i), self.epoch) for i in indices])
            self.position += 1
            yield batch
        self.epoch, self.position = self.epoch + 1, 0

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a saved {"seed", "epoch", "position"}."""
        if not 0 <= state["position"] <= len(self):
            raise ValueError(f"position {state['position']} is outside this loader's epoch of {len(self)} "
                             "batches (was it saved with another batch_size or dataset?)")
        self.seed, self.epoch, self.position = int(state["seed"]), int(state["epoch"]), int(state["position"])

    def __repr__(self):
        return (f"DataLoader({type(self.dataset).__name__} of {len(self.dataset)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed}, epoch={self.epoch}, "
                f"position={self.position})")
