import json

import cv2
import numpy as np
import pytest
from PIL import Image

from data.errors import DatasetError
from data.folder import FolderDataset, load_classes, validate_folder

CLASSES = {"name": "toy", "classes": [{"name": "ground", "color": [10, 20, 30]},
                                      {"name": "thing", "color": [200, 0, 0]},
                                      {"name": "other", "color": [0, 200, 0]}], "eval": ["ground", "thing"]}


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "classes.json").write_text(json.dumps(CLASSES))
    for split in ("train", "val"):
        (tmp_path / split / "images").mkdir(parents=True)
        (tmp_path / split / "labels").mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(str(tmp_path / split / "images" / f"img{i}.jpg"), rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
            label = np.zeros((40, 60), np.uint8)
            label[10:20, 10:30] = 1
            label[25:, :] = 2
            label[0, 0] = 255
            cv2.imwrite(str(tmp_path / split / "labels" / f"img{i}.png"), label)
    return tmp_path


def test_reads_pairs_and_classes(folder):
    ds = FolderDataset(root=folder, split="train")
    assert len(ds) == 2
    assert ds.label_space.name == "toy" and ds.label_space.classes == ("ground", "thing", "other")
    assert ds.label_space.palette[1] == (200, 0, 0) and ds.label_space.eval_train_ids == (0, 1)
    image, mask = ds[0]
    assert image.shape == (3, 40, 60)
    assert mask[15, 15] == 1 and mask[30, 0] == 2 and mask[0, 0] == 255
    assert validate_folder(folder) == {"train": 2, "val": 2}


def test_palette_png_labels_are_read_as_indices(folder):
    label = Image.fromarray(np.full((40, 60), 2, np.uint8), mode="P")
    label.putpalette([10, 20, 30, 200, 0, 0, 0, 200, 0] + [0] * (256 * 3 - 9))
    label.save(folder / "val" / "labels" / "img0.png")
    ds = FolderDataset(root=folder, split="val")
    assert (ds[0][1] == 2).all()


def test_missing_class_file(folder):
    (folder / "classes.json").unlink()
    with pytest.raises(DatasetError, match="classes.json: class file not found; write one like"):
        FolderDataset(root=folder, split="train")


@pytest.mark.parametrize("spec, message", [
    ("{not json", "invalid JSON at line 1"),
    ('{"classes": []}', "'classes' must be a non-empty list"),
    ('[{"name": "a", "color": [1, 2]}]', r"classes\[0\] \('a'\): 'color' must be three integers"),
    ('[{"color": [1, 2, 3]}]', r"classes\[0\]: needs a non-empty 'name'"),
    ('[{"name": "a", "color": [1, 2, 3]}, {"name": "a", "color": [1, 2, 3]}]', "appears twice"),
    ('{"classes": [{"name": "a", "color": [1, 2, 3]}], "eval": ["b"]}', "'eval' must list class names"),
])
def test_bad_class_file(folder, spec, message):
    (folder / "classes.json").write_text(spec)
    with pytest.raises(DatasetError, match=message):
        load_classes(folder)


def test_label_value_beyond_the_classes(folder):
    cv2.imwrite(str(folder / "train" / "labels" / "img1.png"), np.full((40, 60), 3, np.uint8))
    with pytest.raises(DatasetError, match=r"img1.png: unknown label values 3 \(expected class indices 0..2"):
        FolderDataset(root=folder, split="train")


def test_unpaired_files(folder):
    (folder / "val" / "labels" / "img1.png").unlink()
    with pytest.raises(DatasetError, match="img1.jpg: image without its label"):
        FolderDataset(root=folder, split="val")


def test_missing_split(folder):
    with pytest.raises(DatasetError, match="test/images: folder not found"):
        FolderDataset(root=folder, split="test")


def test_colour_label_refused(folder):
    cv2.imwrite(str(folder / "train" / "labels" / "img0.png"), np.zeros((40, 60, 3), np.uint8))
    with pytest.raises(DatasetError, match="single-channel 8-bit"):
        FolderDataset(root=folder, split="train")
