"""The demo's output files: one encode each, in the format that suits each, and what they hold."""

from __future__ import annotations

import numpy as np
from PIL import Image

from segment.images import blend, colorize
from serve.outputs import write_outputs, write_overlay
from serve.segmentation import DemoResult
from serve.stages import StageClock

PALETTE = np.array([[128, 64, 128], [0, 0, 142], [70, 130, 180]], np.uint8)


def _result(h: int = 48, w: int = 64) -> DemoResult:
    yy, xx = np.mgrid[0:h, 0:w]
    photo = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 255 // (h + w)], -1).astype(np.uint8)  # smooth
    labels = np.zeros((h, w), np.uint8)
    labels[: h // 3] = 2
    labels[:, w // 2:] = 1
    return DemoResult(photo=photo, color=colorize(labels, PALETTE), labels=labels, legend=[], prediction=None,
                      original_size=(h, w))


def test_files_hold_the_overlay_the_colour_map_and_the_labels(tmp_path):
    result = _result()
    clock = StageClock()
    files = write_outputs(tmp_path, "street", result, PALETTE, 0.7, clock)
    assert [p.name for p in (files.overlay, files.color, files.labels)] == [
        "street_overlay.jpg", "street_color.png", "street_trainIds.png"]
    color = Image.open(files.color)
    assert color.mode == "P"  # palette PNG: the class colours over one byte per pixel
    assert (np.asarray(color.convert("RGB")) == result.color).all()
    labels = Image.open(files.labels)
    assert labels.mode == "L" and (np.asarray(labels) == result.labels).all()
    overlay = np.asarray(Image.open(files.overlay).convert("RGB"), dtype=np.float32)
    expected = blend(result.photo, result.color, 0.7).astype(np.float32)
    assert overlay.shape == expected.shape and np.abs(overlay - expected).mean() < 8  # lossy JPEG
    assert {"encode_overlay", "encode_color", "encode_labels", "write"} <= set(clock.laps_ms)
    assert not list(tmp_path.glob(".*"))  # nothing left beside the three files


def test_overlay_accepts_encoded_bytes_or_an_image(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    data = write_overlay(first, "x", _result().photo).read_bytes()
    assert data[:2] == b"\xff\xd8"  # a JPEG
    assert write_overlay(second, "x", data).read_bytes() == data
