"""Several training sets as one (``--extra-train NAME:ROOT``), with what the trainer reads from a dataset.

torch's ConcatDataset gives length and indexing; the trainer also needs
``.transform`` (reseeded per sample by train.sampling.SeededDataset), ``.label_space``
and, for ENet class weights, ``.files`` + ``.to_train_ids``. All parts share one
transform object, so reseeding it reseeds whichever part the sample comes from.
"""

from __future__ import annotations

import bisect
from pathlib import Path

import numpy as np
from torch.utils.data import ConcatDataset

from segment.errors import UserError


class ConcatTrainSet(ConcatDataset):
    """``parts[0]`` first, then the others; label space and transform are the first part's."""

    def __init__(self, *, parts: list) -> None:
        super().__init__(parts)
        main = parts[0]
        for part in parts[1:]:
            if tuple(part.label_space.classes) != tuple(main.label_space.classes):
                raise UserError(
                    f"{part!r} predicts classes {list(part.label_space.classes)}, but {main!r} uses "
                    f"{list(main.label_space.classes)}: every training set must share one label space")
            if part.transform is not main.transform:
                raise ValueError("ConcatTrainSet: all parts must share one transform object (it is reseeded per sample)")
        self.label_space = main.label_space
        self.files = [pair for part in parts for pair in part.files]
        # label file -> the part that knows how to map it to trainIds (CamVid and Cityscapes differ).
        self._owner = {str(label): part for part in parts for _, label in part.files}

    @property
    def transform(self):
        return self.datasets[0].transform

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The untransformed pair of sample ``index``, from the part that holds it (``--data-on-device``)."""
        part = bisect.bisect_right(self.cumulative_sizes, index)
        return self.datasets[part].load(index - (self.cumulative_sizes[part - 1] if part else 0))

    def to_train_ids(self, label: np.ndarray, label_path: Path) -> np.ndarray:
        return self._owner[str(label_path)].to_train_ids(label, label_path)

    def __repr__(self) -> str:
        return f"ConcatTrainSet({' + '.join(repr(p) for p in self.datasets)})"


def parse_extra(spec: str) -> tuple[str, str]:
    """'NAME:ROOT' -> (name, root); UserError if malformed."""
    name, sep, root = spec.partition(":")
    if not sep or not name or not root:
        raise UserError(f"--extra-train {spec!r}: expected NAME:ROOT, e.g. synthetic:runs/synth")
    return name, root
