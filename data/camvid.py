"""CamVid, the 360x480 SegNet release, read into the Cityscapes label space.

Layout: ``root/{train,val,test}/*.png`` with labels of the same name in
``root/{split}annot/``. Label values 0..10 are CamVid's 11 classes, 11 is void.
Each class maps to its closest Cityscapes class (sky, building, pole, road,
sidewalk, vegetation, traffic sign, fence, car, person, rider), so one model
head and one palette serve both datasets; mIoU is the mean over those 11.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import PairDataset, Transform
from .errors import DatasetError
from .labels import CAMVID_TO_CITYSCAPES, IGNORE_INDEX, TRAIN_ID, label_space
from .splits import split_files
from .validate import raise_problems

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def camvid_to_trainid_lut() -> np.ndarray:
    """256-entry uint8 table: CamVid label value -> Cityscapes trainId (void -> 255)."""
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for value, name in enumerate(CAMVID_TO_CITYSCAPES):
        lut[value] = TRAIN_ID[name]
    return lut


def camvid_sequence(image: Path) -> str:
    """The drive a CamVid frame comes from: its name up to the first '_' (0001TP_006690.png -> 0001TP)."""
    return image.stem.split("_", 1)[0]


def camvid_files(root: str | Path, split: str) -> list[tuple[Path, Path]]:
    """(image, label) pairs of a split expression (``train+val@!0001TP``: data.splits)."""
    return split_files(
        split, allowed=SPLITS, dataset="CamVid",
        files_of=lambda one: _one_split(Path(root), one), sequence_of=camvid_sequence,
    )


def _one_split(root: Path, split: str) -> list[tuple[Path, Path]]:
    """(image, label) pairs of one split; DatasetError naming what is missing."""
    image_dir, label_dir = root / split, root / f"{split}annot"
    for d in (image_dir, label_dir):
        if not d.is_dir():
            raise DatasetError(
                f"{d}: folder not found; a CamVid root (SegNet 360x480 release) holds "
                f"{split}/ and {split}annot/ — check --data-root"
            )
    images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DatasetError(f"{image_dir}: no images (.png/.jpg) found; check --data-root")
    labels = {p.stem: p for p in label_dir.iterdir() if p.suffix.lower() == ".png"}
    stems = {img.stem for img in images}
    problems = [f"{img}: no label {label_dir / (img.stem + '.png')}; add it or remove the image"
                for img in images if img.stem not in labels]
    problems += [f"{labels[s]}: label without an image in {image_dir}; add the image or remove the label"
                 for s in sorted(set(labels) - stems)]
    raise_problems(problems, root)
    return [(img, labels[img.stem]) for img in images]


class CamVidDataset(PairDataset):
    """CamVid ``split`` under ``root``; yields (image 3xHxW float32, trainIds HxW int64).

    ``validate=True`` runs :func:`validate_camvid` on this split first (in the calling
    process: about a second for all 701 frames), so a cut-short or mis-sized file fails
    before a DataLoader starts, every such file named in one message.
    """

    def __init__(self, *, root: str | Path, split: str, transform: Transform | None = None, validate: bool = True):
        super().__init__(transform=transform)
        self.root = Path(root)
        self.split = split
        if validate:
            validate_camvid(self.root, (split,))
        self.files = camvid_files(self.root, split)
        self.label_space = label_space("camvid")
        self._lut = camvid_to_trainid_lut()

    def to_train_ids(self, label: np.ndarray, label_path: Path) -> np.ndarray:
        return self._lut[label]


def validate_camvid(
    root: str | Path, splits: tuple[str, ...] = ("train", "val"), *, deep: bool = False
) -> dict[str, int]:
    """Check CamVid splits (pairs, sizes, truncation, label values 0..11); return pairs per split."""
    from .validate import check_pairs

    allowed = np.zeros(256, bool)
    allowed[:12] = True
    fix = "re-download the SegNet CamVid release"

    def allowed_for(_path):
        return allowed, "0..10 (classes) or 11 (void)", "use the SegNet release's *annot labels"

    counts, problems = {}, []
    for split in splits:
        files = camvid_files(root, split)
        problems += check_pairs(files, allowed_for=allowed_for, deep=deep, fix=fix)
        counts[split] = len(files)
    raise_problems(problems, Path(root))
    return counts
