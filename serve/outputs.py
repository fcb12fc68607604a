"""The images one demo result is sent as, each encoded once in the format that suits it.

- the overlay (photo-like): JPEG quality 90, 1 ms at 480x360 here where WebP
  quality 90 took 71 ms;
- the colour map (a few flat colours): a palette PNG, one byte per pixel, used
  both for the page's map and its download;
- the labels (trainIds 0..18): a greyscale PNG for tools.

The page gets the overlay and the map inside the result itself, as ``data:``
URLs (``Inline``): no second request per image, which costs a round trip on
a remote connection and 26-33 ms of a 2-core server's time at half here. The
API gets every output as a file, and the page's downloads (colour map,
labels) are files too.

Each request has a fresh folder of its own (``serve.app._request_folder``) and
hands the paths out only once the files are complete, so plain writes are
safe: no temporary name and rename, no fsync (which cost 16 ms a request
here; these files are a cache, not data to survive a power loss).
"""

from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segment.images import encode_image, encode_palette_png, encode_png

OVERLAY_QUALITY = 90  # JPEG quality of the overlay: class edges stay crisp at 1:1 on the page
_SERIAL = itertools.count(1)


@dataclass(frozen=True)
class Inline:
    """An encoded image the page shows from a ``data:`` URL (``serve.app.inline_image``)."""

    data: bytes
    mime: str  # "image/jpeg", "image/png"
    name: str  # the file name the page's download button gives it

    def url(self) -> str:
        # A serial number as the URL's fragment (ignored when the image is decoded): every result
        # is a new value for the page, as a fresh file's URL is, even when its pixels are identical.
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}#{next(_SERIAL)}"


@dataclass
class Encoded:
    overlay: bytes  # JPEG
    color: bytes  # palette PNG
    labels: bytes  # greyscale PNG of trainIds


@dataclass
class OutputFiles:
    overlay: Path | None  # not written for the page, which gets it inline
    color: Path
    labels: Path


def write_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)  # a fresh folder of this request's own: see the module's note
    return path


def encode_overlay(overlay: np.ndarray) -> bytes:
    return encode_image(overlay, "JPEG", quality=OVERLAY_QUALITY)


def inline_overlay(stem: str, overlay: bytes) -> Inline:
    return Inline(overlay, "image/jpeg", f"{stem}_overlay.jpg")


def inline_color(stem: str, color: bytes) -> Inline:
    return Inline(color, "image/png", f"{stem}_color.png")


def encode_outputs(result, palette, opacity: float, clock=None) -> Encoded:
    """Encode the overlay at ``opacity``, the colour map and the labels of ``result`` (a
    ``serve.segmentation.DemoResult``); ``clock`` (a ``serve.stages.StageClock``) gets a lap per encode."""
    lap = clock.lap if clock is not None else (lambda name: None)
    overlay = encode_overlay(result.overlay(opacity))
    lap("encode_overlay")
    color = encode_palette_png(result.labels, palette)
    lap("encode_color")
    labels = encode_png(result.labels)
    lap("encode_labels")
    return Encoded(overlay=overlay, color=color, labels=labels)


def write_outputs(folder: Path, stem: str, encoded: Encoded, *, overlay: bool = True, clock=None) -> OutputFiles:
    """Write the encoded outputs under ``folder``: the colour map and labels always (downloads, and
    the colour map for re-blends), the overlay only if asked (the API's file)."""
    files = OutputFiles(overlay=write_file(folder / f"{stem}_overlay.jpg", encoded.overlay) if overlay else None,
                        color=write_file(folder / f"{stem}_color.png", encoded.color),
                        labels=write_file(folder / f"{stem}_trainIds.png", encoded.labels))
    if clock is not None:
        clock.lap("write")
    return files
