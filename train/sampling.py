"""Deterministic, resumable data order and augmentation.

Every sample of every epoch gets its own seed, derived from (run seed, epoch,
position in the epoch), and the augmentation pipeline is reseeded from it just
before the sample is transformed. So what the model sees depends only on the
seed and the iteration: not on the number of DataLoader workers, not on which
worker loads what, not on whether the run was interrupted and resumed (a
resumed run restarts its epoch at the right batch), and not on the number of
ranks (each global batch is the same set of samples, split over ranks).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


_PERMUTATION_KEY = 2**32 - 1  # a position no sample has: the key of the epoch's permutation


def sample_seed(seed: int, epoch: int, position: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, position]).generate_state(1)[0])


def reseed_transform(transform, seed: int) -> None:
    """Reseed an albumentations pipeline, giving every transform in it its own stream.

    (``Compose.set_random_seed`` hands the *same* seed to every child, which would
    correlate e.g. the flip with the scale draw; we derive one per child.)
    """
    import albumentations as A

    if isinstance(transform, A.BaseCompose):
        transform.set_random_seed(seed)
        for i, child in enumerate(transform.transforms):
            reseed_transform(child, sample_seed(seed, 0, i + 1))
    elif hasattr(transform, "set_random_seed"):
        transform.set_random_seed(seed)


class SeededDataset(Dataset):
    """Wraps a dataset; items are fetched with ``(index, seed)`` keys from :class:`EpochSampler`."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        index, seed = key
        reseed_transform(self.dataset.transform, seed)
        return self.dataset[index]


class EpochSampler(Sampler):
    """One epoch of full global batches, this rank's share, from a given batch on.

    The epoch's permutation comes from a generator seeded with (seed, epoch), the
    same on every rank; global batch j is ``perm[j*B:(j+1)*B]`` and rank r takes
    its r-th slice of it. The incomplete last batch is dropped (BatchNorm needs
    full batches). ``set_epoch(epoch, start_batch)`` positions the sampler.
    """

    def __init__(self, *, size: int, global_batch: int, rank: int = 0, world_size: int = 1,
                 seed: int = 0, shuffle: bool = True) -> None:
        if global_batch % world_size:
            raise ValueError(f"batch {global_batch} must be divisible by the number of processes ({world_size})")
        if size < global_batch:
            raise ValueError(f"the training set has {size} images, fewer than one batch ({global_batch}); lower --batch")
        self.size, self.global_batch, self.rank, self.world_size = size, global_batch, rank, world_size
        self.local_batch = global_batch // world_size
        self.seed, self.shuffle = seed, shuffle
        self.epoch, self.start_batch = 0, 0

    @property
    def batches_per_epoch(self) -> int:
        return self.size // self.global_batch

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.local_batch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            g = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, _PERMUTATION_KEY))
            perm = torch.randperm(self.size, generator=g).tolist()
        else:
            perm = list(range(self.size))
        B, b = self.global_batch, self.local_batch
        for j in range(self.start_batch, self.batches_per_epoch):
            for pos in range(j * B + self.rank * b, j * B + (self.rank + 1) * b):
                yield perm[pos], sample_seed(self.seed, self.epoch, pos)


class ShardSampler(Sampler):
    """Evaluation: rank r takes images r, r+W, ... (no padding, so nothing is counted twice)."""

    def __init__(self, *, size: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = list(range(rank, size, world_size))

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self):
        return iter(self.indices)
