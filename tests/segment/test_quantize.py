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


def test_calibration_photos_keep_their_aspect_ratio(tmp_path):
    """A 4:3 photo calibrating a 2:1 shape is fitted and padded with the mean colour, as
    'segment predict' feeds it, not stretched to 2:1."""
    from segment.normalization import IMAGENET_MEAN
    from segment.sizes import pad_colour

    photo = np.zeros((30, 40, 3), np.uint8)
    photo[:, :20] = 200  # left half bright: a stretch would move the edge to column 40 of 80
    Image.fromarray(photo).save(tmp_path / "p.png")
    (image,) = calibration_images((40, 80), folder=tmp_path, count=1)
    assert image.shape == (40, 80, 3)
    assert (image[:, :25] == 200).all() and (image[:, 28:53] == 0).all()  # 30x40 fitted to 40x53
    assert (image[:, 54:] == np.array(pad_colour(IMAGENET_MEAN), np.uint8)).all()


def test_int8_is_calibrated_on_the_bundled_photos_unless_given_a_folder(tmp_path):
    """Without --calib-data int8 is calibrated on the street photos shipped in the package (real
    photos, not synthetic scenes), and the quantizer tag the guard records carry says so."""
    from segment.backends import int8_quantizer
    from segment.quantize import BUNDLED_PHOTOS, calibration_folder

    assert calibration_folder(None) == BUNDLED_PHOTOS
    assert len(list_images(BUNDLED_PHOTOS)) >= 3
    assert calibration_folder(tmp_path) == tmp_path
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    default = int8_quantizer("openvino", None)
    assert default == int8_quantizer("openvino", BUNDLED_PHOTOS)
    assert "synthetic" not in default and default != int8_quantizer("openvino", tmp_path)


def test_guard_photos_cover_the_shape_without_stretching(tmp_path):
    """cover=True: every pixel is photo (no padding), the photo keeps its proportions (a
    centred square stays square) and the centre stays the centre."""
    photo = np.zeros((300, 400, 3), np.uint8)
    photo[100:200, 150:250] = 255  # a 100x100 square in the middle of a 4:3 photo
    Image.fromarray(photo).save(tmp_path / "p.png")
    (image,) = calibration_images((100, 200), folder=tmp_path, count=1, cover=True)
    assert image.shape == (100, 200, 3)
    ys, xs = np.nonzero(image[..., 0] > 127)
    # Scaled by 0.5 to width 200 (height 150), then the middle 100 rows kept: a 50x50 square.
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (25, 74, 75, 124)


def test_autos_agreement_check_runs_on_the_bundled_photos():
    import torch

    from segment.predict import Predictor
    from segment.quantize import BUNDLED_PHOTOS

    model = torch.nn.Conv2d(3, 2, 1)
    p = Predictor(model=model, classes=["a", "b"], palette=[[0, 0, 0], [255, 255, 255]],
                  mean=[0.5] * 3, std=[0.25] * 3, backend="torch", threads=1)
    images = p.guard_images((64, 128), count=2)
    expected = calibration_images((64, 128), folder=BUNDLED_PHOTOS, count=2, cover=True)
    assert len(images) == 2 and all(np.array_equal(a, b) for a, b in zip(images, expected))
    assert not np.array_equal(images[0], calibration_images((64, 128), count=1)[0])  # not a synthetic scene
