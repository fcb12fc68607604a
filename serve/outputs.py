"""The files one demo result is served as, each encoded once in the format that suits it.

- the overlay (photo-like): JPEG quality 90, 1 ms at 480x360 here where WebP
  quality 90 took 71 ms;
- the colour map (a few flat colours): a palette PNG, one byte per pixel, used
  both for the page's map and its download;
- the labels (trainIds 0..18): a greyscale PNG for tools.

Each request has a fresh folder of its own (``serve.app._request_folder``) and
hands the paths out only once the files are complete, so plain writes are
safe: no temporary name and rename, no fsync (which cost 16 ms a request
here; these files are a cache, not data to survive a power loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segment.images import encode_image, encode_palette_png, encode_png

OVERLAY_QUALITY = 90  # JPEG quality of the overlay: class edges stay crisp at 1:1 on the page


@dataclass
class OutputFiles:
    overlay: Path
    color: Path
    labels: Path


def write_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)  # a fresh folder of this request's own: see the module's note
    return path


def encode_overlay(overlay: np.ndarray) -> bytes:
    return encode_image(overlay, "JPEG", quality=OVERLAY_QUALITY)


def write_overlay(folder: Path, stem: str, overlay: np.ndarray | bytes) -> Path:
    """The overlay's file: an (H, W, 3) array is encoded first, bytes are written as they are."""
    data = overlay if isinstance(overlay, bytes) else encode_overlay(overlay)
    return write_file(folder / f"{stem}_overlay.jpg", data)


def write_outputs(folder: Path, stem: str, result, palette, opacity: float, clock=None) -> OutputFiles:
    """Encode the overlay at ``opacity``, the colour map and the labels of ``result`` (a
    ``serve.segmentation.DemoResult``) and write them; ``clock`` (a ``serve.stages.StageClock``)
    gets a lap per encode and one for the writes."""
    lap = clock.lap if clock is not None else (lambda name: None)
    overlay = encode_overlay(result.overlay(opacity))
    lap("encode_overlay")
    color = encode_palette_png(result.labels, palette)
    lap("encode_color")
    labels = encode_png(result.labels)
    lap("encode_labels")
    files = OutputFiles(overlay=write_overlay(folder, stem, overlay),
                        color=write_file(folder / f"{stem}_color.png", color),
                        labels=write_file(folder / f"{stem}_trainIds.png", labels))
    lap("write")
    return files
