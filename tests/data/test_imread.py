"""data.imread: dataset images are read by the project's one image reader (segment.images.read_image)."""

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from data.errors import DatasetError
from data.imread import read_rgb
from segment.images import read_image


def _noise(h=24, w=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_png_pixels_equal_an_independent_decoder(tmp_path):
    rgb = _noise()
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))  # written by OpenCV, read by Pillow
    out = read_rgb(path)
    assert out.dtype == np.uint8 and out.flags.writeable
    assert np.array_equal(out, rgb)


def test_same_result_as_the_demo_for_rgba_grey_and_exif(tmp_path):
    rgba = Image.fromarray(np.dstack([_noise(), np.full((24, 40), 128, np.uint8)]), "RGBA")
    rgba.save(tmp_path / "rgba.png")
    Image.fromarray(_noise()[..., 0], "L").save(tmp_path / "grey.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    buf = io.BytesIO()
    Image.fromarray(_noise(16, 32)).save(buf, "JPEG", exif=exif)
    (tmp_path / "rot.jpg").write_bytes(buf.getvalue())
    for name in ("rgba.png", "grey.png", "rot.jpg"):
        assert np.array_equal(read_rgb(tmp_path / name), read_image((tmp_path / name).read_bytes()))
    assert read_rgb(tmp_path / "rot.jpg").shape == (32, 16, 3)  # EXIF orientation applied


@pytest.mark.parametrize("content", [b"not an image at all" * 4, None])
def test_unreadable_images_are_dataset_errors_naming_the_file(tmp_path, content):
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DatasetError) as err:
        read_rgb(path)
    assert str(path) in str(err.value) and str(err.value).endswith(", or remove it together with its label")
