"""Checks shared by the dataset validators: fast header reads, pair checks, one clear error.

Validation runs in the main process before any DataLoader starts, so a broken
dataset stops the run with a message that names the file and says what to do.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .errors import DatasetError

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the last 12 bytes of every complete PNG
_JPEG_SOI, _JPEG_EOI = b"\xff\xd8", b"\xff\xd9"
MAX_LISTED = 5  # problems quoted in one error message


def _head_tail(path: Path, n_head: int, n_tail: int) -> tuple[bytes, bytes]:
    try:
        with open(path, "rb") as f:
            head = f.read(n_head)
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - n_tail))
            return head, f.read(n_tail)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot open ({exc.strerror}); check that it exists and is readable") from None


def png_header(path: Path, fix: str = "re-extract or re-download it") -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) of a PNG, from 33 bytes at its start and
    12 at its end: no decoding, so thousands of files take seconds. DatasetError if the
    file is not a PNG or is cut short (a complete PNG ends with the IEND chunk)."""
    head, tail = _head_tail(path, 33, 12)
    if len(head) < 33 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise DatasetError(f"{path}: not a PNG file (empty or corrupt); {fix}")
    if tail != _PNG_IEND:
        raise DatasetError(f"{path}: truncated PNG (the file was cut short, no end marker); {fix}")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"), head[24], head[25]


def image_size(path: Path, fix: str = "re-extract or re-download it") -> tuple[int, int]:
    """(width, height) of a PNG or JPEG (other formats: via PIL's lazy header read)."""
    if path.suffix.lower() == ".png":
        return png_header(path, fix)[:2]
    if path.suffix.lower() in (".jpg", ".jpeg"):
        head, tail = _head_tail(path, 2, 2)
        if head != _JPEG_SOI:
            raise DatasetError(f"{path}: not a JPEG file (empty or corrupt); {fix}")
        if tail != _JPEG_EOI:
            raise DatasetError(f"{path}: truncated JPEG (the file was cut short); {fix}")
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size
    except Exception as exc:  # PIL raises several types for unreadable files
        raise DatasetError(f"{path}: cannot read this image ({exc}); {fix}") from None


def raise_problems(problems: list[str], root: Path) -> None:
    if not problems:
        return
    if len(problems) == 1:
        raise DatasetError(problems[0])
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    listed = "\n  ".join(problems[:MAX_LISTED])
    raise DatasetError(f"{len(problems)} problems in the dataset at {root}:\n  {listed}{more}")


def check_values(label: np.ndarray, allowed: np.ndarray, path: Path, expected: str, fix: str) -> None:
    """DatasetError if ``label`` holds a value v with ``allowed[v]`` False."""
    top = int(label.max())
    if allowed[: top + 1].all():  # the common case, decided by one cheap max()
        return
    present = np.flatnonzero(np.bincount(label.ravel(), minlength=256))
    bad = [int(v) for v in present if not allowed[v]]
    if bad:
        values = ", ".join(str(v) for v in bad[:10])
        raise DatasetError(f"{path}: unknown label values {values} (expected {expected}); {fix}")


# label_path -> (allowed bool[256], description of the allowed values, what to do)
AllowedFor = Callable[[Path], tuple[np.ndarray, str, str]]


def check_pair(pair: tuple[Path, Path], allowed_for: AllowedFor | None, deep: bool, fix: str) -> None:
    """One (image, label) pair: both complete, same size, label single-channel 8-bit with allowed values."""
    from .imread import read_label

    image_path, label_path = pair
    iw, ih = image_size(image_path, fix)
    if label_path.suffix.lower() != ".png":
        raise DatasetError(f"{label_path}: labels must be PNG (lossless); save it as a single-channel PNG")
    lw, lh, depth, colour = png_header(label_path, fix)
    if (lw, lh) != (iw, ih):
        raise DatasetError(
            f"{label_path}: label is {lw}x{lh} (WxH) but its image {image_path.name} is {iw}x{ih}; "
            f"labels must match their images pixel for pixel; {fix}"
        )
    if depth != 8 or colour not in (0, 3):  # 8-bit greyscale or palette
        raise DatasetError(
            f"{label_path}: a label must be a single-channel 8-bit PNG of class ids (this one has "
            f"bit depth {depth}, PNG colour type {colour}); save it in mode 'L' or 'P'"
        )
    if allowed_for is not None or deep:
        label = read_label(label_path)
        if allowed_for is not None:
            allowed, expected, value_fix = allowed_for(label_path)
            check_values(label, allowed, label_path, expected, value_fix)
    if deep and cv2.imread(str(image_path), cv2.IMREAD_COLOR) is None:
        # A full decode catches corruption inside a file that header checks cannot see.
        raise DatasetError(f"{image_path}: the image cannot be decoded (corrupt data); {fix}")


def check_pairs(
    files: list[tuple[Path, Path]],
    *,
    allowed_for: AllowedFor | None,
    deep: bool = False,
    fix: str = "re-extract or re-download it",
    workers: int | None = None,
) -> list[str]:
    """Problem messages for all pairs (empty if none). Threads: file reads and OpenCV release the GIL."""

    def one(pair):
        try:
            check_pair(pair, allowed_for, deep, fix)
        except DatasetError as exc:
            return str(exc)
        return None

    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [p for p in pool.map(one, files) if p]
