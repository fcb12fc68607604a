"""Data order and augmentation depend only on (seed, epoch, position): not on workers, ranks or resumption."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from data.cityscapes import CityscapesDataset
from data.transforms import train_transform
from train.sampling import EpochSampler, SeededDataset


def batches(sampler, epoch, start=0):
    sampler.set_epoch(epoch, start)
    keys = list(sampler)
    b = sampler.local_batch
    return [keys[i:i + b] for i in range(0, len(keys), b)]


def test_ranks_split_each_global_batch_and_resume_skips_exactly():
    one = EpochSampler(size=23, global_batch=4, seed=5)
    assert one.batches_per_epoch == 5  # 23 // 4: the incomplete batch is dropped
    full = batches(one, epoch=2)
    assert len({k[0] for batch in full for k in batch}) == 20  # no image twice in an epoch
    ranks = [EpochSampler(size=23, global_batch=4, rank=r, world_size=2, seed=5) for r in range(2)]
    per_rank = [batches(s, epoch=2) for s in ranks]
    for j in range(5):
        assert per_rank[0][j] + per_rank[1][j] == full[j]
    assert batches(one, epoch=2, start=3) == full[3:]
    assert batches(one, epoch=3) != full  # a new epoch is a new order


def test_augmentation_is_the_same_with_any_number_of_workers(synth_root):
    ds = SeededDataset(CityscapesDataset(root=synth_root, split="train", transform=train_transform(crop=(48, 48))))
    sampler = EpochSampler(size=len(ds), global_batch=4, seed=1)

    def run(workers):
        sampler.set_epoch(1)
        loader = DataLoader(ds, batch_size=4, sampler=sampler, num_workers=workers, drop_last=True)
        return [(x.clone(), y.clone()) for x, y in loader]

    a, b = run(0), run(2)
    assert len(a) == len(b) == 2
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    key = next(iter(sampler))
    x1, _ = ds[key]
    x2, _ = ds[(key[0], key[1] + 1)]  # another seed, another augmentation
    assert not torch.equal(x1, x2)
