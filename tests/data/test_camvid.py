from pathlib import Path

import cv2
import numpy as np
import pytest

from data.camvid import CamVidDataset, validate_camvid
from data.errors import DatasetError
from data.labels import CITYSCAPES_CLASSES

REAL_CAMVID = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "camvid"
# CamVid value -> Cityscapes class, as in shared/datasets/camvid/README.md
README_TABLE = ["sky", "building", "pole", "road", "sidewalk", "vegetation",
                "traffic sign", "fence", "car", "person", "rider"]


@pytest.fixture
def camvid(tmp_path):
    """A tiny CamVid-layout tree: 3 train and 2 val images at 36x48, labels using all 12 values."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("val", 2)):
        (tmp_path / split).mkdir()
        (tmp_path / f"{split}annot").mkdir()
        for i in range(n):
            cv2.imwrite(str(tmp_path / split / f"f{i:03d}.png"), rng.integers(0, 255, (36, 48, 3), dtype=np.uint8))
            label = (np.arange(36 * 48).reshape(36, 48) % 12).astype(np.uint8)
            cv2.imwrite(str(tmp_path / f"{split}annot" / f"f{i:03d}.png"), label)
    return tmp_path


def test_values_map_to_cityscapes_trainids(camvid):
    ds = CamVidDataset(root=camvid, split="train")
    assert len(ds) == 3 and ds.label_space.name == "camvid"
    image, mask = ds[0]
    assert image.shape == (3, 36, 48) and mask.shape == (36, 48)
    raw = (np.arange(36 * 48).reshape(36, 48) % 12)
    for value, name in enumerate(README_TABLE):
        assert (mask.numpy()[raw == value] == CITYSCAPES_CLASSES.index(name)).all()
    assert (mask.numpy()[raw == 11] == 255).all()  # void
    assert [ds.label_space.classes[i] for i in ds.label_space.eval_train_ids] == README_TABLE


def test_validate_counts(camvid):
    assert validate_camvid(camvid) == {"train": 3, "val": 2}


def test_missing_folder(camvid):
    for p in (camvid / "valannot").iterdir():
        p.unlink()
    (camvid / "valannot").rmdir()
    with pytest.raises(DatasetError, match="valannot: folder not found"):
        CamVidDataset(root=camvid, split="val")


def test_image_without_label(camvid):
    (camvid / "trainannot" / "f001.png").unlink()
    with pytest.raises(DatasetError, match="f001.png: no label"):
        CamVidDataset(root=camvid, split="train")


def test_every_unpaired_file_is_listed_at_once(camvid):
    (camvid / "trainannot" / "f001.png").unlink()
    (camvid / "trainannot" / "f002.png").unlink()
    (camvid / "train" / "f000.png").unlink()
    with pytest.raises(DatasetError, match=r"3 problems in the dataset") as info:
        CamVidDataset(root=camvid, split="train")
    message = str(info.value)
    assert "f001.png: no label" in message and "f002.png: no label" in message
    assert "f000.png: label without an image" in message


def test_label_without_image(camvid):
    (camvid / "train" / "f002.png").unlink()
    with pytest.raises(DatasetError, match="label without an image"):
        CamVidDataset(root=camvid, split="train")


def test_bad_label_values(camvid):
    cv2.imwrite(str(camvid / "valannot" / "f000.png"), np.full((36, 48), 40, np.uint8))
    with pytest.raises(DatasetError, match="f000.png: unknown label values 40"):
        validate_camvid(camvid)


@pytest.mark.skipif(not REAL_CAMVID.is_dir(), reason="the real CamVid copy is not on this machine")
def test_real_camvid_if_present():
    ds = CamVidDataset(root=REAL_CAMVID, split="val")
    assert len(ds) == 101
    image, mask = ds[0]
    assert image.shape == (3, 360, 480)
    assert set(mask.unique().tolist()) <= set(ds.label_space.eval_train_ids) | {255}
