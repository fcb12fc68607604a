"""Reading images and label maps, with errors that name the file.

Images go through the project's one image reader, ``segment.images.read_image``
(the same decoding as ``segment predict`` and the demo: EXIF orientation, any
colour mode to 8-bit RGB, a pixel limit checked from the header). Label maps
are class ids, not pictures, and are read here with OpenCV, unchanged.
Workers of a DataLoader must not each start a pool of OpenCV threads on top of
torch's: the loaders call cv2.setNumThreads(0) in their worker init.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from segment.images import ImageError, read_image

from .errors import DatasetError


def read_rgb(path: str | Path) -> np.ndarray:
    """An HxWx3 uint8 RGB image; DatasetError if the file cannot be decoded."""
    try:
        return read_image(path)
    except ImageError as exc:
        raise DatasetError(f"{exc}, or remove it together with its label") from None


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
