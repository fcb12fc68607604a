"""Reading images and label maps, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .errors import DatasetError

# Decoding is done by OpenCV (libpng/libjpeg-turbo, the fastest decoder in our
# stack). Workers of a DataLoader must not each start a pool of OpenCV threads
# on top of torch's: the loaders call cv2.setNumThreads(0) in their worker init.


_IMREAD_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)


def read_rgb(path: str | Path) -> np.ndarray:
    """An HxWx3 uint8 RGB image; DatasetError if the file cannot be decoded."""
    # IMREAD_COLOR_RGB (OpenCV >= 4.10) decodes straight to RGB: no extra cvtColor pass.
    img = cv2.imread(str(path), _IMREAD_RGB) if _IMREAD_RGB is not None else cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(
            f"{path}: cannot read this image (missing, truncated or not an image); "
            "re-extract or re-download it, or remove it together with its label"
        )
    return img if _IMREAD_RGB is not None else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_label(path: str | Path) -> np.ndarray:
    """An HxW uint8 label map; DatasetError if unreadable or not single-channel 8-bit."""
    lab = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if lab is None:
        raise DatasetError(
            f"{path}: cannot read this label image (missing, truncated or not a PNG); "
            "re-extract or re-download it, or remove it together with its image"
        )
    if lab.ndim == 3:
        # OpenCV expands palette ("P") PNGs to colour; their indices are the class ids.
        from PIL import Image

        with Image.open(path) as pil:
            if pil.mode == "P":
                lab = np.array(pil)
    if lab.ndim != 2 or lab.dtype != np.uint8:
        raise DatasetError(
            f"{path}: a label must be a single-channel 8-bit PNG of class ids, "
            f"got shape {lab.shape} dtype {lab.dtype}; save it in mode 'L' (or 'P')"
        )
    return lab


def check_same_size(image: np.ndarray, label: np.ndarray, image_path, label_path) -> None:
    if image.shape[:2] != label.shape[:2]:
        raise DatasetError(
            f"{label_path}: label is {label.shape[1]}x{label.shape[0]} (WxH) but its image "
            f"{image_path} is {image.shape[1]}x{image.shape[0]}; labels must match their images pixel for pixel"
        )
