"""The on-device augmentation (data.device_augment) against the CPU pipeline it stands in for."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from data.device_augment import UNIFORMS, DeviceAugment, DeviceDataset, Params, check_fits, warp
from data.labels import IGNORE_INDEX
from data.transforms import MEAN, STD, RandomScaleCrop, pad_value, train_transform
from segment.errors import UserError


def checker(h=120, w=200, block=16):
    """As tests/data/test_transforms.py: a checkerboard whose grey level is 20 + 10 * its trainId."""
    yy, xx = np.mgrid[:h, :w]
    mask = ((yy // block) * 7 + (xx // block) * 3) % 19
    return np.repeat((20 + 10 * mask)[..., None], 3, axis=2).astype(np.uint8), mask.astype(np.uint8)


def denormalize(image: torch.Tensor) -> np.ndarray:
    mean = torch.tensor(MEAN).view(3, 1, 1) * 255
    std = torch.tensor(STD).view(3, 1, 1) * 255
    return (image * std + mean).numpy()


def as_tensors(image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(image).permute(2, 0, 1).contiguous(), torch.from_numpy(mask)


def run(augment: DeviceAugment, image, mask, n: int, seed: int = 0):
    """``n`` augmented copies of one image: (normalized images, labels)."""
    img, lab = as_tensors(image, mask)
    u = torch.rand((n, UNIFORMS), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return augment([img] * n, [lab] * n, u)


class FixedDraws:
    """Stands in for RandomScaleCrop's py_random: returns a given scale and offsets."""

    def __init__(self, scale: float, offsets: list[int]) -> None:
        self.scale, self.offsets = scale, list(offsets)

    def uniform(self, lo, hi):
        return self.scale

    def randint(self, lo, hi):
        value = self.offsets.pop(0)
        assert lo <= value <= hi
        return value


def smooth_image(h, w):
    yy, xx = np.mgrid[:h, :w]
    base = 128 + 90 * np.sin(yy / 5.0) * np.cos(xx / 7.0)
    return np.stack([base, base + 20 * np.cos(yy / 3.0), 255 - base], axis=-1).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("pad_fill", ["mean", "black"])
def test_warp_equals_random_scale_crop_for_the_same_draws(pad_fill):
    """Same scale, offsets and flip: labels identical to RandomScaleCrop's (cv2) pixel for pixel,
    the image within one grey level (cv2 interpolates in fixed point), padding included."""
    fill = pad_value(pad_fill)
    h, w, crop = 37, 53, (40, 45)
    image = smooth_image(h, w)
    yy, xx = np.mgrid[:h, :w]
    mask = ((yy * 7 + xx * 3) % 19).astype(np.uint8)  # a function of the pixel: any shift shows
    img, lab = as_tensors(image, mask)
    rng = np.random.default_rng(0)
    for _ in range(200):
        s = float(rng.uniform(0.3, 2.5))
        sh, sw = int(round(h * s)), int(round(w * s))
        y0 = int(rng.integers(min(0, sh - crop[0]), max(0, sh - crop[0]) + 1))
        x0 = int(rng.integers(min(0, sw - crop[1]), max(0, sw - crop[1]) + 1))
        flip = bool(rng.integers(2))
        cpu = RandomScaleCrop(size=crop, scale=(0.3, 2.5), fill=fill)
        cpu.py_random = FixedDraws(s, [y0, x0])
        params = cpu.get_params_dependent_on_data({"shape": image.shape}, {})
        ref_image, ref_mask = cpu.apply(image, **params), cpu.apply_to_mask(mask, **params)
        if flip:
            ref_image, ref_mask = ref_image[:, ::-1], ref_mask[:, ::-1]
        p = Params(*(torch.tensor([v]) for v in (sh, sw, y0, x0, flip)))
        out, out_mask = warp(img[None], lab[None], p, crop, fill=fill)
        assert np.array_equal(out_mask[0].numpy(), ref_mask)
        assert np.abs(out[0].permute(1, 2, 0).numpy() - ref_image).max() <= 1.0


def test_scale_one_full_crop_without_flip_is_the_identity():
    image, mask = checker(64, 96)
    augment = DeviceAugment(crop=(64, 96), scale=(1.0, 1.0), hflip=False)
    images, labels = run(augment, image, mask, 3)
    cpu = train_transform(crop=(64, 96), scale=(1.0, 1.0), hflip=False)(image=image, mask=mask)
    for i in range(3):
        assert torch.equal(labels[i], torch.from_numpy(mask).long())
        assert torch.allclose(images[i], cpu["image"], atol=1e-5)  # normalized as the CPU pipeline does


@pytest.mark.parametrize("log_scale, expected", [
    # Padding share for a crop the image's size: 1 - s^2 for s < 1, else 0. s ~ U(0.5, 2):
    # (2/3 - (1/2 - 1/24)) / 1.5 = 0.139; log s ~ U(log 0.5, log 2): (ln 2 - 3/8) / ln 4 = 0.229.
    (False, 0.139), (True, (math.log(2) - 0.375) / math.log(4)),
])
def test_scale_statistics_match_the_cpu_pipeline(log_scale, expected):
    image, mask = checker(100, 100)
    augment = DeviceAugment(crop=(100, 100), scale=(0.5, 2.0), log_scale=log_scale, hflip=False)
    _, labels = run(augment, image, mask, 1000, seed=1)
    device_share = (labels == IGNORE_INDEX).float().mean().item()
    cpu = train_transform(crop=(100, 100), scale=(0.5, 2.0), log_scale=log_scale, hflip=False)
    cpu.set_random_seed(3)
    cpu_share = np.mean([(cpu(image=image, mask=mask)["mask"].numpy() == IGNORE_INDEX).mean() for _ in range(400)])
    assert device_share == pytest.approx(expected, abs=0.02)
    assert cpu_share == pytest.approx(expected, abs=0.03)


def test_scale_draws_cover_the_range():
    augment = DeviceAugment(crop=(10, 10), scale=(0.75, 4.0), log_scale=True)
    u = torch.rand((4000, UNIFORMS), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    p = augment.draw(torch.tensor([[1000, 1000]]).expand(4000, 2), u)
    logs = torch.log(p.sh.double() / 1000)
    lo, hi = math.log(0.75), math.log(4.0)
    assert logs.min() >= lo - 1e-3 and logs.max() <= hi + 1e-3
    assert (logs < (lo + hi) / 2).double().mean().item() == pytest.approx(0.5, abs=0.03)


def test_flips_half_of_the_samples_and_flips_image_and_mask_together():
    image, mask = checker(64, 96)
    augment = DeviceAugment(crop=(64, 96), scale=(1.0, 1.0), hflip=True)
    images, labels = run(augment, image, mask, 1000, seed=2)
    plain = torch.from_numpy(mask).long()
    flipped = labels.eq(plain.flip(-1)).flatten(1).all(1)
    assert (flipped | labels.eq(plain).flatten(1).all(1)).all()
    assert flipped.double().mean().item() == pytest.approx(0.5, abs=0.05)
    grey = torch.from_numpy(image[..., 0]).float()
    restored = torch.from_numpy(np.stack([denormalize(im)[0] for im in images[flipped][:20]]))
    assert torch.allclose(restored, grey.flip(-1).expand_as(restored), atol=1e-3)


def offsets_seen(image_hw, crop, n=3000):
    """Each sample's crop offset (negative: where the image starts in the crop), read back from
    an image whose red and green channels are the pixel's row and column (scale 1: no blending)."""
    h, w = image_hw
    yy, xx = np.mgrid[:h, :w]
    image = np.stack([yy, xx, yy], axis=-1).astype(np.uint8)
    images, labels = run(DeviceAugment(crop=crop, scale=(1.0, 1.0), hflip=False), image,
                         np.zeros((h, w), np.uint8), n, seed=4)
    inside = labels != IGNORE_INDEX
    top, left = inside.any(2).int().argmax(1), inside.any(1).int().argmax(1)  # the image's first row, column
    n = torch.arange(len(images))
    std = torch.tensor(STD[:2]) * 255
    mean = torch.tensor(MEAN[:2]) * 255
    row_col = torch.round(images[n, :2, top, left] * std + mean).long()  # source pixel at (top, left)
    return (row_col[:, 0] - top).numpy(), (row_col[:, 1] - left).numpy()


@pytest.mark.parametrize("image_hw, crop", [((26, 40), (16, 16)), ((10, 12), (16, 20))])
def test_crop_positions_are_uniform_over_the_allowed_range(image_hw, crop):
    """Larger image: the crop starts anywhere in [0, H - ch]; smaller: the image lands anywhere in the crop."""
    ys, xs = offsets_seen(image_hw, crop)
    for got, size, out in ((ys, image_hw[0], crop[0]), (xs, image_hw[1], crop[1])):
        lo, hi = min(0, size - out), max(0, size - out)
        counts = np.bincount(got - lo, minlength=hi - lo + 1)
        assert got.min() == lo and got.max() == hi and len(counts) == hi - lo + 1
        expected = len(got) / len(counts)
        chi2 = ((counts - expected) ** 2 / expected).sum()
        assert chi2 < len(counts) + 5 * math.sqrt(2 * len(counts))  # about 5 sigma for a uniform


def test_labels_hold_only_source_values_and_ignore():
    image, mask = checker(90, 130)
    mask = np.where(mask % 3 == 0, 3, np.where(mask % 3 == 1, 7, 11)).astype(np.uint8)
    _, labels = run(DeviceAugment(crop=(96, 96), scale=(0.3, 2.5)), image, mask, 300, seed=5)
    assert set(labels.unique().tolist()) == {3, 7, 11, IGNORE_INDEX}  # never a blend such as 5


def test_image_and_mask_stay_aligned_in_a_batch_of_two_sizes():
    """As tests/data/test_transforms.py::test_image_and_mask_stay_aligned, with images of
    two sizes in one batch (resampled in same-size groups)."""
    import cv2

    pairs = [as_tensors(*checker(120, 200)), as_tensors(*checker(90, 150, block=20))]
    images = [pairs[i % 2][0] for i in range(30)]
    labels = [pairs[i % 2][1] for i in range(30)]
    u = torch.rand((30, UNIFORMS), generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    out, out_labels = DeviceAugment(crop=(150, 150), scale=(0.5, 2.0))(images, labels, u)
    kernel = np.ones((5, 5))
    for image, lab in zip(out, out_labels):
        grey, m = denormalize(image), lab.numpy().astype(int)
        valid = m != IGNORE_INDEX
        m8 = m.astype(np.uint8)
        interior = valid & (cv2.erode(m8, kernel) == cv2.dilate(m8, kernel))
        assert interior.sum() > 400
        assert (np.abs(grey[0] - (20 + 10 * m)) < 3)[interior].mean() > 0.99
        assert np.allclose(grey[:, ~valid], 0, atol=1e-3)  # padding: black image, ignored label


def test_same_uniforms_same_batch():
    image, mask = checker(60, 80)
    a = run(DeviceAugment(crop=(48, 48)), image, mask, 8, seed=9)
    b = run(DeviceAugment(crop=(48, 48)), image, mask, 8, seed=9)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_device_dataset_holds_the_decoded_pairs(synth_root):
    from data.cityscapes import CityscapesDataset

    ds = CityscapesDataset(root=synth_root, split="train")
    data = DeviceDataset.load(ds, device=torch.device("cpu"), name="synthetic train")
    assert len(data) == len(ds) and data.nbytes == 4 * 128 * 256 * len(ds)
    image, label = ds.load(2)
    assert data.images[2].dtype == torch.uint8 and data.images[2].shape == (3, 128, 256)
    assert np.array_equal(data.images[2].permute(1, 2, 0).numpy(), image)
    assert np.array_equal(data.labels[2].numpy(), label)


def test_a_set_that_does_not_fit_is_refused_with_what_to_do(synth_root, monkeypatch):
    import data.device_augment as device_augment
    from data.cityscapes import CityscapesDataset

    monkeypatch.setattr(device_augment, "free_memory", lambda device: 3 * 1024**3)
    with pytest.raises(UserError, match=r"cityscapes train \(4 images\) needs 1\.50 GB.*3\.22 GB free"
                                        r".*without --data-on-device"):
        check_fits(nbytes=int(1.5e9), device=torch.device("cpu"), name="cityscapes train (4 images)")
    monkeypatch.setattr(device_augment, "free_memory", lambda device: 2 * 1024**3)
    with pytest.raises(UserError, match=r"synthetic train \(4 images\) needs 0\.00 GB"):
        DeviceDataset.load(CityscapesDataset(root=synth_root, split="train"), device=torch.device("cpu"),
                           name="synthetic train")
