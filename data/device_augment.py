"""The training augmentation on the training device, batched, for a dataset held there.

``DeviceDataset`` decodes a dataset once into uint8 tensors on the device (images
3xHxW, labels HxW trainIds with 255 = ignore, one tensor per image; a batch is
resampled in groups of equal size). ``DeviceAugment`` draws and applies the
augmentation of :class:`data.transforms.RandomScaleCrop` + ``HorizontalFlip(p=0.5)``
+ normalization to a whole batch with torch ops, so no CPU worker decodes or warps.

Same draws as the CPU pipeline, sample by sample:

- scale ``s``: uniform over ``scale`` (or log-uniform with ``log_scale``); the scaled
  size is ``round(h * s) x round(w * s)`` (Python's and torch's rounding: half to even);
- crop offset in the scaled image: an integer uniform over ``[min(0, sh - ch), max(0, sh - ch)]``
  (negative: the scaled image is smaller than the crop and lands at a random place inside it);
- flip with probability 0.5.

Same resampling: RandomScaleCrop maps output pixel ``u`` to source pixel
``(u + x0 + 0.5) / (sw / w) - 0.5`` (pixel centres aligned as ``cv2.resize``
aligns them). ``grid_sample`` with ``align_corners=False`` reads grid value
``g`` at source pixel ``((g + 1) * w - 1) / 2``, so ``g = 2 * (u + x0 + 0.5) / sw - 1``
is that same pixel. Bilinear with ``padding_mode="border"`` is the replicated
border RandomScaleCrop warps with; the result is rounded, as cv2 writes uint8.
Labels are gathered at ``floor(x + 0.5)`` (cv2's nearest-neighbour rule), so they
hold only source values. Output pixels outside the scaled image (``u + x0`` not in
``[0, sw)``) are padding: ``fill`` (uint8 RGB), label 255, as RandomScaleCrop writes them.
A flip mirrors the output columns.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from segment.errors import UserError
from segment.normalization import IMAGENET_MEAN, IMAGENET_STD

from .labels import IGNORE_INDEX

GB = 1e9
RESERVE_FRACTION = 0.25  # of the free memory, left for the model, activations and batches
RESERVE_MIN_BYTES = 2 * 1024**3  # at least this much is left free


# ---------------------------------------------------------------- the dataset on the device


def free_memory(device: torch.device) -> int:
    """Bytes free on ``device``: the GPU's free memory, or the host's MemAvailable."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def pixels(path) -> int:
    """Width x height of an image file, from its header (nothing decoded)."""
    from PIL import Image

    with Image.open(path) as im:
        return im.size[0] * im.size[1]


def check_fits(*, nbytes: int, device: torch.device, name: str) -> None:
    """UserError unless ``nbytes`` fit on ``device`` with room left for training."""
    free = free_memory(device)
    reserve = max(RESERVE_MIN_BYTES, int(RESERVE_FRACTION * free))
    if nbytes > free - reserve:
        raise UserError(
            f"--data-on-device: {name} needs {nbytes / GB:.2f} GB as uint8 but {device} has "
            f"{free / GB:.2f} GB free, of which {reserve / GB:.2f} GB are kept for training; "
            "train without --data-on-device (the normal DataLoader path) or on a device with more memory")


class _RawPairs(torch.utils.data.Dataset):
    """The dataset's untransformed (image, label) pairs, for a decoding DataLoader."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.dataset.load(index)


class DeviceDataset:
    """Every (image, label) pair of a dataset, decoded once, as uint8 tensors on ``device``.

    ``images[i]``: 3xHxW RGB; ``labels[i]``: HxW trainIds (255 = ignore).
    """

    def __init__(self, images: list[torch.Tensor], labels: list[torch.Tensor]) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() for t in self.images) + sum(t.numel() for t in self.labels)

    @classmethod
    def load(cls, dataset, *, device: torch.device, name: str, workers: int = 0) -> "DeviceDataset":
        """Decode ``dataset`` (anything with ``files`` and ``load(i)``) onto ``device``.

        Its size is summed from the image headers first: UserError, before decoding
        anything, if it does not fit (:func:`check_fits`). ``workers`` decode in parallel.
        """
        check_fits(nbytes=4 * sum(pixels(image) for image, _ in dataset.files), device=device,
                   name=f"{name} ({len(dataset)} images)")
        from .base import worker_init_fn

        loader = torch.utils.data.DataLoader(_RawPairs(dataset), batch_size=None, num_workers=workers,
                                             worker_init_fn=worker_init_fn)
        images, labels = [], []
        for image, label in loader:
            images.append(image.permute(2, 0, 1).contiguous().to(device))
            labels.append(label.to(device))
        return cls(images, labels)


def load_timed(dataset, **kwargs) -> tuple[DeviceDataset, float]:
    """:meth:`DeviceDataset.load` and the seconds it took."""
    t0 = time.perf_counter()
    data = DeviceDataset.load(dataset, **kwargs)
    return data, time.perf_counter() - t0


# ---------------------------------------------------------------- the augmentation


@dataclass(frozen=True)
class Params:
    """Per-sample draws, tensors of shape (B,): scaled size, crop offset in it, flip."""

    sh: torch.Tensor
    sw: torch.Tensor
    y0: torch.Tensor
    x0: torch.Tensor
    flip: torch.Tensor

    def select(self, rows: torch.Tensor) -> "Params":
        return Params(self.sh[rows], self.sw[rows], self.y0[rows], self.x0[rows], self.flip[rows])


UNIFORMS = 4  # uniforms per sample: scale, y offset, x offset, flip


def uniform_int(u: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """An integer uniform over [lo, hi] (inclusive, as random.randint) from u in [0, 1)."""
    return torch.minimum(lo + torch.floor(u * (hi - lo + 1)).long(), hi)


@dataclass(frozen=True)
class DeviceAugment:
    """RandomScaleCrop + horizontal flip + normalization, batched on the tensors' device."""

    crop: tuple[int, int] = (769, 769)  # (height, width) of the output crop
    scale: tuple[float, float] = (0.5, 2.0)  # range of the scale factor
    log_scale: bool = False  # draw log(scale) uniformly (RandomScaleCrop's log_scale)
    hflip: bool = True  # flip with probability 0.5
    fill: tuple[float, float, float] = (0.0, 0.0, 0.0)  # uint8 RGB of the padding (data.transforms.pad_value)
    mean: tuple[float, float, float] = IMAGENET_MEAN  # on [0, 1] pixels, as data.transforms normalizes
    std: tuple[float, float, float] = IMAGENET_STD

    def draw(self, hw: torch.Tensor, u: torch.Tensor) -> Params:
        """Params for source sizes ``hw`` (B x 2, int64) from uniforms ``u`` (B x UNIFORMS, float64)."""
        lo, hi = self.scale
        if self.log_scale:
            s = torch.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * u[:, 0])
        else:
            s = lo + (hi - lo) * u[:, 0]
        sh, sw = torch.round(hw[:, 0] * s).long(), torch.round(hw[:, 1] * s).long()
        ch, cw = self.crop
        zero = torch.zeros_like(sh)
        y0 = uniform_int(u[:, 1], torch.minimum(zero, sh - ch), torch.maximum(zero, sh - ch))
        x0 = uniform_int(u[:, 2], torch.minimum(zero, sw - cw), torch.maximum(zero, sw - cw))
        flip = (u[:, 3] < 0.5) if self.hflip else torch.zeros_like(sh, dtype=torch.bool)
        return Params(sh, sw, y0, x0, flip)

    def __call__(self, images: list[torch.Tensor], labels: list[torch.Tensor],
                 u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalized float32 images Bx3xCHxCW and int64 labels BxCHxCW from uint8 sources."""
        hw = torch.tensor([tuple(img.shape[-2:]) for img in images], device=u.device)
        params = self.draw(hw, u)
        out_images = torch.empty((len(images), 3, *self.crop), dtype=torch.float32, device=u.device)
        out_labels = torch.empty((len(images), *self.crop), dtype=torch.int64, device=u.device)
        for rows in same_size_groups(images):
            index = torch.tensor(rows, device=u.device)
            out_images[index], out_labels[index] = warp(
                torch.stack([images[i] for i in rows]), torch.stack([labels[i] for i in rows]),
                params.select(index), self.crop, fill=self.fill)
        return self.normalize(out_images), out_labels

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """(x - 255 mean) / (255 std), as albumentations' Normalize(max_pixel_value=255)."""
        mean = torch.tensor(self.mean, device=images.device).view(1, 3, 1, 1) * 255.0
        inv = 1.0 / (torch.tensor(self.std, device=images.device).view(1, 3, 1, 1) * 255.0)
        return (images - mean) * inv


def same_size_groups(images: list[torch.Tensor]) -> list[list[int]]:
    """Positions of the images that share a size, one list per size."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, img in enumerate(images):
        groups.setdefault(tuple(img.shape), []).append(i)
    return list(groups.values())


def axis_map(offset: torch.Tensor, scaled: torch.Tensor, source: int, out: int, flip: torch.Tensor | None = None):
    """Along one axis, for each sample (rows) and output pixel (columns): the grid_sample
    coordinate, the nearest source pixel, and whether the pixel lies on the scaled image."""
    u = torch.arange(out, device=offset.device)
    if flip is not None:
        u = torch.where(flip[:, None], out - 1 - u, u)
    pos = u + offset[:, None]  # position in the scaled image
    inside = (pos >= 0) & (pos < scaled[:, None])
    centre = pos.double() + 0.5
    grid = 2.0 * centre / scaled[:, None] - 1.0  # align_corners=False
    src = centre * (source / scaled[:, None]) - 0.5  # RandomScaleCrop's source coordinate
    nearest = torch.floor(src + 0.5).long().clamp(0, source - 1)
    return grid.float(), nearest, inside


def warp(images: torch.Tensor, labels: torch.Tensor, p: Params, crop: tuple[int, int],
         fill: tuple[float, float, float] = (0.0, 0.0, 0.0)):
    """Scale, crop, pad (with ``fill``, uint8 RGB) and flip same-size uint8 ``images`` (Bx3xHxW)
    and ``labels`` (BxHxW).

    Returns the image as float32 0-255 (rounded: cv2 writes uint8) and the labels as int64.
    """
    (h, w), (ch, cw) = images.shape[-2:], crop
    gy, ny, in_y = axis_map(p.y0, p.sh, h, ch)
    gx, nx, in_x = axis_map(p.x0, p.sw, w, cw, p.flip)
    b = images.shape[0]
    grid = torch.stack([gx[:, None, :].expand(b, ch, cw), gy[:, :, None].expand(b, ch, cw)], dim=-1)
    out = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    inside = in_y[:, :, None] & in_x[:, None, :]
    pad = torch.tensor(fill, dtype=out.dtype, device=out.device).view(1, 3, 1, 1)
    out = torch.where(inside[:, None], torch.round(out), pad)
    rows = torch.arange(b, device=images.device)[:, None, None]
    lab = labels[rows, ny[:, :, None], nx[:, None, :]].long().masked_fill_(~inside, IGNORE_INDEX)
    return out, lab
