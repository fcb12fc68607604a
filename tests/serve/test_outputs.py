"""The demo's outputs: one encode each, in the format that suits each, what they hold, how they are sent."""

from __future__ import annotations

import numpy as np
from PIL import Image

from segment.images import blend, colorize
import base64

from serve.outputs import encode_outputs, inline_overlay, write_outputs
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
    files = write_outputs(tmp_path, "street", encode_outputs(result, PALETTE, 0.7, clock), clock=clock)
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


def test_the_page_gets_no_overlay_file(tmp_path):
    files = write_outputs(tmp_path, "street", encode_outputs(_result(), PALETTE, 0.5), overlay=False)
    assert files.overlay is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["street_color.png", "street_trainIds.png"]


def test_an_inline_image_is_a_data_url_that_decodes_to_its_bytes_and_differs_each_time():
    data = encode_outputs(_result(), PALETTE, 0.5).overlay
    picture = inline_overlay("street", data)
    first, second = picture.url(), picture.url()
    assert first.startswith("data:image/jpeg;base64,") and picture.name == "street_overlay.jpg"
    payload, _, tag = first.removeprefix("data:image/jpeg;base64,").partition("#")
    assert base64.b64decode(payload) == data and data[:2] == b"\xff\xd8"  # a JPEG
    # The fragment makes each result a new value for the page, even for identical pixels.
    assert tag and first != second and first.partition("#")[0] == second.partition("#")[0]
