"""What every dataset shares: a list of (image, label) files and a transform."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from .imread import check_same_size, read_label, read_rgb
from .labels import LabelSpace

Transform = Callable[..., dict]  # called as t(image=..., mask=...) -> {"image", "mask"}


class PairDataset(Dataset):
    """Reads ``files[i] = (image_path, label_path)``, maps the label to trainIds,
    applies ``transform`` and returns ``(image float32 3xHxW, mask int64 HxW)``.

    Subclasses fill ``files`` and ``label_space`` and override :meth:`to_train_ids`.
    """

    files: list[tuple[Path, Path]]
    label_space: LabelSpace

    def __init__(self, *, transform: Transform | None = None):
        if transform is None:
            from .transforms import eval_transform

            transform = eval_transform()
        self.transform = transform

    def to_train_ids(self, label: np.ndarray, label_path: Path) -> np.ndarray:
        raise NotImplementedError

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The untransformed pair: RGB uint8 HxWx3 and trainIds uint8 HxW."""
        image_path, label_path = self.files[index]
        image = read_rgb(image_path)
        label = read_label(label_path)
        check_same_size(image, label, image_path, label_path)
        return image, self.to_train_ids(label, label_path)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.load(index)
        out = self.transform(image=image, mask=mask)
        img, msk = out["image"], out["mask"]
        if not isinstance(img, torch.Tensor):  # a plain albumentations pipeline without ToTensorV2
            img = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        msk = torch.as_tensor(np.asarray(msk)) if not isinstance(msk, torch.Tensor) else msk
        return img.float(), msk.long()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} images, label_space={self.label_space.name!r})"


def worker_init_fn(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: one OpenCV thread per worker process.

    Each worker is already one of N parallel processes; OpenCV's own thread
    pool inside each would oversubscribe the cores.
    """
    import cv2

    cv2.setNumThreads(0)
