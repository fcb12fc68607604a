import os
import cv2
import numpy as np
import pytest
import torch

from data.labels import IGNORE_INDEX
from data.transforms import MEAN, STD, eval_transform, train_transform

VALID = set(range(19)) | {IGNORE_INDEX}


def checker(h=120, w=200, block=16):
    """A checkerboard-like pattern whose image encodes its mask: grey level 20 + 10 * trainId."""
    yy, xx = np.mgrid[:h, :w]
    mask = ((yy // block) * 7 + (xx // block) * 3) % 19
    image = np.repeat((20 + 10 * mask)[..., None], 3, axis=2).astype(np.uint8)
    return image, mask.astype(np.uint8)


def denormalize(image: torch.Tensor) -> np.ndarray:
    mean = torch.tensor(MEAN).view(3, 1, 1) * 255
    std = torch.tensor(STD).view(3, 1, 1) * 255
    return (image * std + mean).numpy()


@pytest.mark.parametrize("fast", [True, False])
def test_train_masks_hold_only_trainids_and_ignore(synth_root, fast):
    from data.cityscapes import CityscapesDataset

    transform = train_transform(crop=(120, 240), fast=fast)
    transform.set_random_seed(0)
    ds = CityscapesDataset(root=synth_root, split="train", validate=False, transform=transform)
    seen = set()
    for _ in range(3):
        for i in range(len(ds)):
            image, mask = ds[i]
            assert image.shape == (3, 120, 240) and image.dtype == torch.float32
            assert mask.shape == (120, 240) and mask.dtype == torch.int64
            values = set(mask.unique().tolist())
            assert values <= VALID
            seen |= values
    assert IGNORE_INDEX in seen  # padding (scaled image smaller than the crop) is ignore
    assert len(seen) > 5


@pytest.mark.parametrize("fast", [True, False])
def test_image_and_mask_stay_aligned(fast):
    image, mask = checker()
    t = train_transform(crop=(150, 150), scale=(0.5, 2.0), fast=fast)
    t.set_random_seed(1)
    padded = 0
    for _ in range(30):
        out = t(image=image, mask=mask)
        grey = denormalize(out["image"])
        m = out["mask"].numpy().astype(int)
        assert set(np.unique(m)) <= VALID
        valid = m != IGNORE_INDEX
        assert valid.any()
        # Away from block edges (where bilinear resampling blends neighbours) every pixel's
        # grey level decodes to its mask value.
        interior = valid & (cv2.erode(m.astype(np.uint8), np.ones((5, 5))) == cv2.dilate(m.astype(np.uint8), np.ones((5, 5))))
        assert interior.sum() > 1000
        match = np.abs(grey[0] - (20 + 10 * m)) < 3
        assert match[interior].mean() > 0.99
        # Padding: ignore in the mask; in the image the mean colour, which normalizes to zero
        # (DeepLab pads with its mean pixel), to within half a grey level.
        padded += int((~valid).sum())
        assert np.abs(out["image"].numpy()[:, ~valid]).max(initial=0.0) < 0.5 / (255 * min(STD))
    assert padded > 0


@pytest.mark.parametrize("fast", [True, False])
def test_padding_with_black_is_kept_for_the_shipped_weights_recipe(fast):
    """--pad-fill black: 0 before normalization, what the shipped weights were trained with."""
    image, mask = checker()
    t = train_transform(crop=(150, 150), scale=(0.5, 0.6), fast=fast, pad_fill="black")
    t.set_random_seed(2)
    out = t(image=image, mask=mask)
    pad = out["mask"].numpy() == IGNORE_INDEX
    assert pad.mean() > 0.3 and np.allclose(denormalize(out["image"])[:, pad], 0, atol=1e-3)
    with pytest.raises(ValueError, match="unknown pad fill"):
        train_transform(pad_fill="grey")


def test_a_misaligned_pipeline_would_be_caught():
    """The alignment check above is not vacuous: flipping only the image breaks it."""
    image, mask = checker()
    out = eval_transform()(image=image[:, ::-1].copy(), mask=mask)
    grey, m = denormalize(out["image"]), out["mask"].numpy().astype(int)
    assert (np.abs(grey[0] - (20 + 10 * m)) < 4).mean() < 0.5


def test_scale_one_full_crop_is_identity():
    image, mask = checker(64, 96)
    out = train_transform(crop=(64, 96), scale=(1.0, 1.0), hflip=False)(image=image, mask=mask)
    assert np.array_equal(out["mask"].numpy(), mask)
    assert np.allclose(denormalize(out["image"]), image.transpose(2, 0, 1), atol=1e-3)


def test_flip_happens_and_flips_both():
    image, mask = checker(64, 96)
    t = train_transform(crop=(64, 96), scale=(1.0, 1.0), hflip=True)
    t.set_random_seed(2)
    flipped = 0
    for _ in range(40):
        out = t(image=image, mask=mask)
        m = out["mask"].numpy()
        if np.array_equal(m, mask[:, ::-1]):
            flipped += 1
            assert np.allclose(denormalize(out["image"])[0], image[:, ::-1, 0], atol=1e-3)
        else:
            assert np.array_equal(m, mask)
    assert 5 < flipped < 35


def test_fast_and_reference_pipelines_scale_alike():
    """Both paths draw the scale from the same range: the share of padding matches on average."""
    image, mask = checker(100, 100)
    shares = {}
    for fast in (True, False):
        t = train_transform(crop=(100, 100), fast=fast, hflip=False)
        t.set_random_seed(3)
        shares[fast] = np.mean([(t(image=image, mask=mask)["mask"].numpy() == IGNORE_INDEX).mean() for _ in range(400)])
    # Padding share for a crop the image's size: 1 - s^2 for s < 1, else 0; with s ~ U(0.5, 2)
    # its mean is (2/3 - (1/2 - 1/24)) / 1.5 = 0.139.
    for share in shares.values():
        assert share == pytest.approx(0.139, abs=0.03)


def test_eval_keeps_size_and_normalizes():
    image, mask = checker(64, 128)
    out = eval_transform()(image=image, mask=mask)
    assert out["image"].shape == (3, 64, 128) and out["mask"].shape == (64, 128)
    expected = (image[0, 0, 0] / 255.0 - MEAN[0]) / STD[0]
    assert out["image"][0, 0, 0].item() == pytest.approx(expected, abs=1e-5)


def test_eval_at_half_resizes_only_the_image():
    image, mask = checker(128, 256)
    out = eval_transform(size=(64, 128))(image=image, mask=mask)
    assert out["image"].shape == (3, 64, 128)
    assert np.array_equal(out["mask"].numpy(), mask)  # scored at the label's full size


@pytest.mark.parametrize("size", ["half", (300, 410)])
def test_eval_resizes_the_image_as_segment_predict_does(size):
    """A non-integer downscale (area averaging and bilinear differ there): the evaluated image is the
    one ``Predictor.prepare`` gives the model, to within the normalization's float rounding."""
    from types import SimpleNamespace

    from segment.predict import Predictor
    from segment.sizes import plan_run

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (900, 1300, 3), dtype=np.uint8)
    plan = plan_run(image.shape[:2], size)
    # prepare() reads only the predictor's normalization mean (for the padding colour).
    served = Predictor.prepare(SimpleNamespace(mean_unit=MEAN), image, plan)[0].astype(np.float32)
    evaluated = denormalize(eval_transform(size=size)(image=image, mask=image[:, :, 0])["image"])
    assert served.shape[:2] == plan.run_hw
    assert np.abs(evaluated.transpose(1, 2, 0) - served).max() < 0.01


def test_importing_data_turns_off_albumentations_network_check_unless_the_user_chose():
    # Offline, albumentations' PyPI version check costs 2 s and a warning per process.
    import subprocess
    import sys

    code = "import os, data; print(os.environ['NO_ALBUMENTATIONS_UPDATE'])"
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip() == "1"
    env["NO_ALBUMENTATIONS_UPDATE"] = "0"
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip() == "0"


def test_log_scale_draws_log_uniformly():
    """With log_scale the scale's logarithm is uniform: as many draws below the range's
    geometric mean as above it, and a quarter below its lower quartile in log space."""
    from data.transforms import RandomScaleCrop

    t = RandomScaleCrop(size=(32, 32), scale=(0.75, 4.0), log_scale=True)
    t.set_random_seed(0)
    image = np.zeros((100, 100, 3), np.uint8)
    scales = []
    for _ in range(2000):
        params = t.get_params_dependent_on_data({"shape": image.shape}, {"image": image})
        scales.append(1.0 / params["matrix"][0, 0])  # the matrix maps output -> source pixels
    logs = np.log(scales)
    lo, hi = np.log(0.75), np.log(4.0)
    assert logs.min() >= lo - 0.02 and logs.max() <= hi + 0.02
    assert np.mean(logs < (lo + hi) / 2) == pytest.approx(0.5, abs=0.04)
    assert np.mean(logs < lo + (hi - lo) / 4) == pytest.approx(0.25, abs=0.04)
    # A uniform draw over the same range puts only (2.07 - 0.75) / 3.25 = 41% below the geometric mean.
    with pytest.raises(ValueError, match="log_scale"):
        train_transform(crop=(32, 32), fast=False, log_scale=True)


def test_photometric_changes_colours_not_labels_or_geometry():
    """--photometric: same seed, same crop and labels; other pixel values, drawn anew per sample,
    and deterministic under the seed (resumable runs)."""
    from train.sampling import reseed_transform

    image, mask = checker(120, 200)
    image = np.ascontiguousarray(np.stack([image[..., 0], 255 - image[..., 0], image[..., 0] // 2], -1))

    def run(photometric, seed):
        t = train_transform(crop=(96, 96), scale=(0.75, 1.5), photometric=photometric)
        reseed_transform(t, seed)
        return t(image=image, mask=mask)

    plain, jittered, again = run(False, 3), run(True, 3), run(True, 3)
    assert torch.equal(plain["mask"], jittered["mask"])
    assert torch.equal(jittered["image"], again["image"])
    changed = [not torch.allclose(run(False, s)["image"], run(True, s)["image"], atol=0.05) for s in range(10)]
    assert 6 <= sum(changed) <= 10  # ColorJitter at p=0.8, white balance at p=0.5: most samples change
    assert not torch.equal(run(True, 4)["image"], run(True, 5)["image"])


def test_eval_photo_changes_alter_only_the_image():
    """segment eval --photo-change: a fixed colour/exposure change of the photo, labels untouched,
    offered under the same names on the command line."""
    import argparse

    from data.transforms import PHOTO_CHANGES
    from train import eval_cli

    image, mask = checker(64, 96)
    plain = denormalize(eval_transform()(image=image, mask=mask)["image"])
    warm = eval_transform(photo_change="warm")(image=image, mask=mask)
    assert torch.equal(warm["mask"], torch.from_numpy(mask))
    got = denormalize(warm["image"])
    np.testing.assert_allclose(got[0], np.clip(plain[0] * 1.15, 0, 255).astype(np.uint8), atol=1.01)
    np.testing.assert_allclose(got[2], np.floor(plain[2] * 0.8), atol=1.01)
    low = denormalize(eval_transform(photo_change="low-contrast")(image=image, mask=mask)["image"])
    assert low.std() < 0.7 * plain.std()
    with pytest.raises(ValueError, match="unknown photo change"):
        eval_transform(photo_change="sepia")
    parser = argparse.ArgumentParser()
    eval_cli.add_arguments(parser)
    assert set(parser._option_string_actions["--photo-change"].choices) == set(PHOTO_CHANGES)
