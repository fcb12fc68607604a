"""Cityscapes, read as its official tools define it.

Layout (as unzipped from leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip):

    ROOT/leftImg8bit/{train,val,test}/{city}/{city}_{seq}_{frame}_leftImg8bit.png
    ROOT/gtFine/{train,val,test}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png

Labels are labelIds (0..33) mapped to the 19 trainIds (255 = ignore) with the
table of ``cityscapesscripts``. Where ``*_gtFine_labelTrainIds.png`` exists
beside a labelIds file (written by cityscapesscripts' ``createTrainIdLabelImgs``),
it is used as is.

:func:`validate_cityscapes` checks a tree before any training starts, so a
broken copy stops the run with one message naming the file, not with a
stack trace from inside a DataLoader worker.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import PairDataset, Transform
from .errors import DatasetError
from .labels import IGNORE_INDEX, KNOWN_LABEL_IDS, labelid_to_trainid_lut, label_space
from .validate import check_pairs, raise_problems

SPLITS = ("train", "val", "test")
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
TRAINID_SUFFIX = "_gtFine_labelTrainIds.png"
GET_IT = (
    "download leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip from "
    "https://www.cityscapes-dataset.com (free registration) and unzip both into the same root"
)


def _stem(path: Path, suffix: str) -> str:
    return path.name[: -len(suffix)]


def cityscapes_files(root: str | Path, split: str) -> list[tuple[Path, Path]]:
    """(image, label) pairs of ``split``, sorted; DatasetError for missing folders or unpaired files."""
    if split not in SPLITS:
        raise DatasetError(f"Cityscapes split must be one of {', '.join(SPLITS)}, got {split!r}")
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root not found; {GET_IT}, then pass that folder as --data-root")
    image_dir, label_dir = root / "leftImg8bit" / split, root / "gtFine" / split
    for d in (image_dir, label_dir):
        if not d.is_dir():
            raise DatasetError(
                f"{d}: folder not found; a Cityscapes root holds leftImg8bit/{split}/<city>/ and "
                f"gtFine/{split}/<city>/ — {GET_IT}"
            )
    images = {_stem(p, IMAGE_SUFFIX): p for p in image_dir.glob(f"*/*{IMAGE_SUFFIX}")}
    labels = {_stem(p, LABEL_SUFFIX): p for p in label_dir.glob(f"*/*{LABEL_SUFFIX}")}
    train_ids = {_stem(p, TRAINID_SUFFIX): p for p in label_dir.glob(f"*/*{TRAINID_SUFFIX}")}
    if not images:
        raise DatasetError(f"{image_dir}: no *{IMAGE_SUFFIX} files in its city folders; {GET_IT}")

    problems = []
    for stem in sorted(set(images) - set(labels) - set(train_ids)):
        img = images[stem]
        want = label_dir / img.parent.name / f"{stem}{LABEL_SUFFIX}"
        problems.append(f"{img}: image without its label {want}; restore the label (gtFine) or delete the image")
    for stem in sorted((set(labels) | set(train_ids)) - set(images)):
        lab = labels.get(stem) or train_ids[stem]
        want = image_dir / lab.parent.name / f"{stem}{IMAGE_SUFFIX}"
        problems.append(f"{lab}: label without its image {want}; restore the image (leftImg8bit) or delete the label")
    raise_problems(problems, root)

    files = []
    for stem in sorted(images):
        files.append((images[stem], train_ids.get(stem) or labels[stem]))
    return files


def _allowed_for(label_path: Path) -> tuple[np.ndarray, str, str]:
    if label_path.name.endswith(TRAINID_SUFFIX):
        allowed = np.zeros(256, bool)
        allowed[:19] = True
        allowed[IGNORE_INDEX] = True
        return allowed, "trainIds 0..18 or 255", "regenerate it with cityscapesscripts' csCreateTrainIdLabelImgs"
    allowed = np.zeros(256, bool)
    allowed[list(KNOWN_LABEL_IDS)] = True
    return allowed, f"labelIds of the official table, 0..{max(KNOWN_LABEL_IDS)}", (
        "this is not an original Cityscapes label (a colour or instance image?): "
        "use the *_gtFine_labelIds.png files from gtFine_trainvaltest.zip"
    )


def validate_cityscapes(
    root: str | Path,
    splits: tuple[str, ...] = ("train", "val"),
    *,
    deep: bool = False,
    check_ids: bool = True,
    workers: int | None = None,
) -> dict[str, int]:
    """Check a Cityscapes tree; return the number of image/label pairs per split.

    Raises DatasetError, naming files and what to do, on: a missing folder, an
    image without its label or the reverse, a file that is not a PNG or is
    truncated, a label whose size differs from its image's, a label that is not
    single-channel 8-bit, or label values outside the official table.

    Default: reads the header and the end of every file (no decoding) and
    decodes the labels (small, fast) for the id check. ``deep=True`` also
    decodes every image in full. ``check_ids=False`` decodes nothing.
    """
    root = Path(root)
    counts = {}
    problems: list[str] = []
    for split in splits:
        files = cityscapes_files(root, split)
        problems += check_pairs(files, allowed_for=_allowed_for if check_ids else None, deep=deep,
                                fix="re-extract it from the Cityscapes zip", workers=workers)
        counts[split] = len(files)
    raise_problems(problems, root)
    return counts


class CityscapesDataset(PairDataset):
    """Cityscapes ``split`` under ``root``; yields (image 3xHxW float32, trainIds HxW int64).

    ``validate=True`` runs :func:`validate_cityscapes` on this split first (in
    the calling process), so a broken tree fails before a DataLoader starts.
    """

    def __init__(
        self, *, root: str | Path, split: str, transform: Transform | None = None, validate: bool = True
    ):
        super().__init__(transform=transform)
        self.root = Path(root)
        self.split = split
        if validate:
            validate_cityscapes(self.root, (split,))
        self.files = cityscapes_files(self.root, split)
        self.label_space = label_space("cityscapes")
        self._lut = labelid_to_trainid_lut()

    def to_train_ids(self, label: np.ndarray, label_path: Path) -> np.ndarray:
        if label_path.name.endswith(TRAINID_SUFFIX):
            return label
        return self._lut[label]
