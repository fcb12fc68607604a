"""``--data-on-device``: training batches from a dataset held on the training device.

:class:`DeviceLoader` stands in for the training DataLoader. The training set is
decoded once onto the device (``data.device_augment.DeviceDataset``, every rank
holds all of it) and each batch is augmented there (``DeviceAugment``). The order
is :class:`train.sampling.EpochSampler`'s, as on the normal path: the same
epoch permutation, global batches and per-rank shares.

The draws come from a ``torch.Generator`` on the device, re-seeded before every
global batch from (run seed, epoch, batch). Every rank draws the whole global
batch's uniforms and takes its own rows, so a global batch gets the same
augmentation for any number of processes. A resumed run re-seeds it the same
way at the batch it restarts on. So nothing about it needs to be stored in the
checkpoint, for the same reason as the per-sample seeds of the normal path.
"""

from __future__ import annotations

import numpy as np
import torch

from data.device_augment import UNIFORMS, DeviceAugment, DeviceDataset, load_timed
from train.logs import echo

_AUGMENT_KEY = 2**32 - 2  # keys the batch seeds apart from train.sampling's sample and permutation seeds


def batch_seed(seed: int, epoch: int, batch: int) -> int:
    """The generator seed of global batch ``batch`` of ``epoch``."""
    return int(np.random.SeedSequence([seed, epoch, _AUGMENT_KEY, batch]).generate_state(1)[0])


class DeviceLoader:
    """Iterates over this rank's (images, masks) batches of the sampler's epoch, from its start batch.

    ``sampler``: a :class:`train.sampling.EpochSampler`; its seed keys the augmentation.
    """

    def __init__(self, data: DeviceDataset, augment: DeviceAugment, sampler, *, device: torch.device) -> None:
        self.data, self.augment, self.sampler, self.device = data, augment, sampler, device
        self.generator = torch.Generator(device=device)

    def with_sampler(self, sampler) -> "DeviceLoader":
        """The same data and augmentation in another order (BatchNorm recalibration's)."""
        return DeviceLoader(self.data, self.augment, sampler, device=self.device)

    def uniforms(self, batch: int) -> torch.Tensor:
        """This rank's rows of global batch ``batch``'s uniforms (local batch x UNIFORMS, float64)."""
        s = self.sampler
        self.generator.manual_seed(batch_seed(s.seed, s.epoch, batch))
        u = torch.rand((s.global_batch, UNIFORMS), generator=self.generator, dtype=torch.float64, device=self.device)
        return u[s.rank * s.local_batch:(s.rank + 1) * s.local_batch]

    def __iter__(self):
        b = self.sampler.local_batch
        indices = [index for index, _ in self.sampler]
        for k in range(len(indices) // b):
            rows = indices[k * b:(k + 1) * b]
            yield self.augment([self.data.images[i] for i in rows], [self.data.labels[i] for i in rows],
                               self.uniforms(self.sampler.start_batch + k))


def device_loader(cfg, train_set, *, sampler, device: torch.device, main_rank: bool) -> DeviceLoader:
    """The training set of ``cfg`` on ``device`` and its loader; UserError if it does not fit."""
    name = f"{cfg.dataset} {cfg.train_split}" + "".join(f" + {e}" for e in cfg.extra_train)
    data, seconds = load_timed(train_set, device=device, name=name, workers=cfg.workers)
    echo(f"--data-on-device: {len(data)} images ({data.nbytes / 1e9:.2f} GB as uint8) decoded onto {device} "
         f"in {seconds:.1f} s", enabled=main_rank)
    from data.transforms import pad_value

    augment = DeviceAugment(crop=tuple(cfg.crop), scale=tuple(cfg.scale), log_scale=cfg.log_scale, hflip=cfg.hflip,
                            fill=pad_value(cfg.pad_fill))
    return DeviceLoader(data, augment, sampler, device=device)
