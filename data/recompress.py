"""Copy a Cityscapes tree with its images re-encoded at a faster-to-decode zlib level.

PNG decoding is most of the cost of a training sample at 1024x2048 (see
docs/data.md): inflating a compressed frame takes about 3x longer than reading
a stored (level 0) one. The copy is a valid Cityscapes tree, lossless (pixel
for pixel equal to the original) and read by the same reader; its images are
larger on disk. Labels are copied byte for byte: they are small and already
fast to decode (storing them uncompressed measured no faster).
Only the files the reader and the evaluator use are written: ``*_leftImg8bit.png``,
``*_gtFine_labelIds.png``, ``*_gtFine_labelTrainIds.png`` and ``*_gtFine_instanceIds.png``.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2

from segment.atomic import write_path_atomic

from .errors import DatasetError
from .synthetic import _write_png

PATTERNS = (("leftImg8bit", "*_leftImg8bit.png"), ("gtFine", "*_gtFine_labelIds.png"),
            ("gtFine", "*_gtFine_labelTrainIds.png"), ("gtFine", "*_gtFine_instanceIds.png"))


def recompress_tree(*, src: str | Path, out: str | Path, level: int = 0, workers: int | None = None) -> int:
    """Write ``src``'s images and labels under ``out`` at PNG ``level``; return files written."""
    src, out = Path(src), Path(out)
    if src.resolve() == out.resolve():
        raise DatasetError(f"{out}: the output must differ from --root (the original is never modified)")
    if not 0 <= level <= 9:
        raise DatasetError(f"--level {level}: PNG zlib level must be 0..9")
    files = [p for top, pattern in PATTERNS for p in sorted((src / top).glob(f"*/*/{pattern}"))]
    if not files:
        raise DatasetError(f"{src}: no Cityscapes images or labels found (expected leftImg8bit/<split>/<city>/...)")

    def one(path: Path) -> None:
        target = out / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not path.name.endswith("_leftImg8bit.png"):
            write_path_atomic(target, lambda tmp: shutil.copyfile(path, tmp))  # no half-copied label if interrupted
            return
        array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # keeps channels and bit depth: lossless
        if array is None:
            raise DatasetError(f"{path}: cannot be decoded; run 'segment data check --deep' on {src}")
        _write_png(target, array, level)

    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(one, files))
    return len(files)
