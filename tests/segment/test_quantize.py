"""segment.quantize: calibration images from a folder are read like every other image."""

import numpy as np
from PIL import Image

from segment.images import read_image
from segment.quantize import calibration_images, list_images


def test_folder_calibration_images_use_the_one_reader(tmp_path):
    rgba = np.random.default_rng(1).integers(0, 256, (20, 30, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")  # alpha: composited on white by read_image
    Image.fromarray(rgba[..., :3]).save(tmp_path / "b.webp", lossless=True)
    (tmp_path / "notes.txt").write_text("not an image")
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "b.webp"]
    images = calibration_images((20, 30), folder=tmp_path, count=2)
    assert np.array_equal(images[0], read_image(tmp_path / "a.png"))
    assert np.array_equal(images[1], rgba[..., :3])
