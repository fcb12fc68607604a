"""The example photos on the page: three real CamVid frames, small, credited on the page and beside them."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from serve.app import EXAMPLES_CREDIT, EXAMPLES_DIR, list_examples

CAMVID_VAL = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "camvid" / "val"
CITATION = ("Brostow, Fauqueur, Cipolla", "Semantic object classes in video: A high-definition ground truth database",
            "Pattern Recognition Letters", "2009", "SegNet", "Badrinarayanan, Kendall, Cipolla", "For research use")


def test_three_small_real_camvid_photos():
    examples = list_examples()
    assert [p.name for p in examples] == ["camvid_0016E5_07967.jpg", "camvid_0016E5_08045.jpg",
                                          "camvid_0016E5_08099.jpg"]
    assert sorted(p.name for p in EXAMPLES_DIR.iterdir()) == sorted([p.name for p in examples] + ["README.md"])
    assert sum(p.stat().st_size for p in examples) < 500_000
    for path in examples:
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB" and image.size == (480, 360)
            pixels = np.asarray(image)
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20_000  # a photograph, not a drawing


@pytest.mark.skipif(not CAMVID_VAL.is_dir(), reason="needs ../shared/datasets/camvid (not in a fresh clone)")
def test_examples_are_the_named_camvid_val_frames():
    for path in list_examples():
        source = CAMVID_VAL / (path.stem.removeprefix("camvid_") + ".png")
        mine = np.asarray(Image.open(path), np.float32)
        theirs = np.asarray(Image.open(source).convert("RGB"), np.float32)
        assert np.abs(mine - theirs).mean() < 3  # the same frame, JPEG quality 90


def test_credit_under_the_examples_and_in_their_readme(demo_server):
    for text in CITATION:
        assert text in EXAMPLES_CREDIT
        assert text in " ".join((EXAMPLES_DIR / "README.md").read_text().split())
    with urllib.request.urlopen(demo_server.url.rstrip("/") + "/config", timeout=10) as resp:
        config = json.loads(resp.read())
    (credit,) = [c["props"] for c in config["components"] if c.get("props", {}).get("elem_id") == "examples-credit"]
    assert credit["value"] == EXAMPLES_CREDIT and credit["visible"] is not False
