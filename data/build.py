"""One constructor for every dataset, by name."""

from __future__ import annotations

from pathlib import Path

from .base import PairDataset, Transform
from .errors import DatasetError

DATASETS = ("cityscapes", "camvid", "folder", "synthetic")


def build_dataset(
    *, name: str, root: str | Path, split: str, transform: Transform | None = None
) -> PairDataset:
    """The dataset ``name`` (cityscapes | camvid | folder | synthetic) at ``root``.

    "synthetic" is a Cityscapes tree written by ``segment synth``: it is read by
    the Cityscapes reader, exactly as real Cityscapes would be.
    """
    if name in ("cityscapes", "synthetic"):
        from .cityscapes import CityscapesDataset

        return CityscapesDataset(root=root, split=split, transform=transform)
    if name == "camvid":
        from .camvid import CamVidDataset

        return CamVidDataset(root=root, split=split, transform=transform)
    if name == "folder":
        from .folder import FolderDataset

        return FolderDataset(root=root, split=split, transform=transform)
    raise DatasetError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
