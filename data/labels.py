"""Label spaces: the Cityscapes train classes, taken from the official table.

Every id, name and colour here is derived from ``cityscapesscripts.helpers.labels``
(the package the Cityscapes authors publish), so our reader and their evaluator
cannot disagree about what a labelId means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cityscapesscripts.helpers.labels import labels as _CS_LABELS

IGNORE_INDEX = 255  # trainId of every void / unscored class, also the mask pad value

# The 19 scored classes, in trainId order 0..18.
_TRAIN_LABELS = sorted(
    (lab for lab in _CS_LABELS if 0 <= lab.trainId < IGNORE_INDEX), key=lambda lab: lab.trainId
)
assert [lab.trainId for lab in _TRAIN_LABELS] == list(range(19)), "unexpected cityscapesscripts table"

CITYSCAPES_CLASSES: list[str] = [lab.name for lab in _TRAIN_LABELS]
CITYSCAPES_PALETTE: list[tuple[int, int, int]] = [tuple(lab.color) for lab in _TRAIN_LABELS]

# labelIds that may appear in a *_gtFine_labelIds.png ("license plate" has id -1
# and is never written into label images).
KNOWN_LABEL_IDS: frozenset[int] = frozenset(lab.id for lab in _CS_LABELS if 0 <= lab.id < 256)

# name -> labelId / trainId, for code that draws or maps classes by name.
LABEL_ID: dict[str, int] = {lab.name: lab.id for lab in _CS_LABELS if lab.id >= 0}
TRAIN_ID: dict[str, int] = {lab.name: lab.trainId for lab in _TRAIN_LABELS}


def labelid_to_trainid_lut() -> np.ndarray:
    """256-entry uint8 table: labelId -> trainId (255 for void and unknown ids)."""
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for lab in _CS_LABELS:
        if 0 <= lab.id < 256 and 0 <= lab.trainId < IGNORE_INDEX:
            lut[lab.id] = lab.trainId
    return lut


def trainid_to_labelid_lut() -> np.ndarray:
    """256-entry uint8 table: trainId -> labelId, for benchmark-server submissions.

    Ignore (255) and unused entries map to 0 ("unlabeled"), which the official
    evaluator skips.
    """
    lut = np.zeros(256, dtype=np.uint8)
    for lab in _TRAIN_LABELS:
        lut[lab.trainId] = lab.id
    return lut


@dataclass(frozen=True)
class LabelSpace:
    """What a model predicts and which of its classes a dataset scores."""

    name: str  # "cityscapes", "camvid", or a folder dataset's name
    classes: tuple[str, ...]  # class names, index = trainId
    palette: tuple[tuple[int, int, int], ...]  # RGB colour per trainId
    eval_train_ids: tuple[int, ...]  # trainIds averaged into mIoU (others not scored)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def eval_classes(self) -> tuple[str, ...]:
        return tuple(self.classes[i] for i in self.eval_train_ids)


# CamVid's 11 classes, in the order of its label values 0..10, as Cityscapes class names.
CAMVID_TO_CITYSCAPES: tuple[str, ...] = (
    "sky", "building", "pole", "road", "sidewalk", "vegetation",
    "traffic sign", "fence", "car", "person", "rider",
)


def label_space(name: str) -> LabelSpace:
    """The label space called ``name``: "cityscapes" or "camvid".

    CamVid shares Cityscapes' 19 classes and palette (so one model head and one
    palette serve the whole app) but only its 11 classes are scored.
    """
    classes = tuple(CITYSCAPES_CLASSES)
    palette = tuple(CITYSCAPES_PALETTE)
    if name == "cityscapes":
        return LabelSpace(name, classes, palette, tuple(range(len(classes))))
    if name == "camvid":
        return LabelSpace(name, classes, palette, tuple(TRAIN_ID[c] for c in CAMVID_TO_CITYSCAPES))
    raise ValueError(f"unknown label space {name!r}; expected 'cityscapes' or 'camvid'")
