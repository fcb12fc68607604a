"""Reading user images (segment.images): orientation, modes, limits, damaged files; atomic PNG writes."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from segment.images import ImageError, blend, colorize, fit_within, read_image, read_photo, write_png


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_exif_orientation_is_applied():
    # A 40x20 photo stored sideways with "rotate 90 CW to view" (orientation 6).
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(Image.fromarray(arr), "JPEG", quality=95, exif=exif.tobytes())
    out = read_image(data)
    assert out.shape == (40, 20, 3)  # upright: taller than wide
    assert out[2, 10, 0] > 200 and out[-3, 10, 0] < 60  # the red half is now on top


def _street_like(h: int, w: int) -> np.ndarray:
    """Smooth gradients with a few hard edges: what a JPEG of a photo holds."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    arr = np.stack([255 * x / w, 255 * y / h, 128 + 100 * np.sin(x / 97.0)], axis=2)
    arr[h // 3: h // 2, w // 4: w // 2] = (20, 200, 40)
    return arr.astype(np.uint8)


@pytest.mark.parametrize("fmt,reduced", [("JPEG", True), ("PNG", False)])
def test_read_photo_fits_within_max_side(fmt, reduced):
    arr = _street_like(1500, 2000)
    data = encode(Image.fromarray(arr), fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    photo = read_photo(data, max_side=512)
    assert photo.original_hw == (1500, 2000)
    # A JPEG decodes at 1/4 scale (500 px >= 0.9 x 512) and is used as it is; a PNG is
    # decoded whole and area-downscaled to exactly 512.
    assert photo.pixels.shape == ((375, 500, 3) if reduced else (384, 512, 3))
    reference = fit_within(read_image(data), max(photo.pixels.shape[:2]))
    assert reference.shape == photo.pixels.shape
    assert np.abs(reference.astype(int) - photo.pixels.astype(int)).mean() < 3.0
    small = read_photo(data, max_side=4096)  # never enlarged, read at its own size
    assert small.pixels.shape == (1500, 2000, 3) and small.original_hw == (1500, 2000)
    assert fit_within(small.pixels, 4096) is small.pixels


@pytest.mark.parametrize("fmt", ["JPEG", "MPO"])
def test_read_photo_keeps_the_side_the_caller_needs(fmt):
    photo = Image.fromarray(_street_like(1500, 2000))
    # MPO: a phone's JPEG with a second picture after it (here a thumbnail).
    extra = {"save_all": True, "append_images": [photo.resize((200, 150))]} if fmt == "MPO" else {}
    data = encode(photo, fmt, quality=95, **extra)
    asked = []
    photo = read_photo(data, needed_side=lambda hw: asked.append(hw) or 600)
    assert asked == [(1500, 2000)] and photo.original_hw == (1500, 2000)
    assert photo.pixels.shape == (750, 1000, 3)  # 1/2 scale: 1/4 (500) would be below 600, nothing fitted
    png = encode(Image.fromarray(_street_like(150, 200)), "PNG")
    assert read_photo(png, needed_side=lambda hw: 10).pixels.shape == (150, 200, 3)  # PNG: decoded whole


def test_read_photo_reports_the_upright_size_of_a_turned_jpeg():
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 2000x1500 landscape, viewed as 1500x2000 portrait
    data = encode(Image.fromarray(_street_like(1500, 2000)), "JPEG", quality=90, exif=exif.tobytes())
    photo = read_photo(data, max_side=512)
    assert photo.original_hw == (2000, 1500)
    assert photo.pixels.shape == (500, 375, 3)


@pytest.mark.parametrize("mode,fmt", [("L", "PNG"), ("RGBA", "PNG"), ("P", "PNG"), ("RGB", "WEBP"),
                                      ("CMYK", "JPEG"), ("LA", "PNG"), ("1", "PNG"), ("RGB", "BMP")])
def test_modes_and_formats_become_rgb(mode, fmt):
    im = Image.new("RGB", (16, 8), (10, 200, 30)).convert(mode)
    out = read_image(encode(im, fmt, **({"lossless": True} if fmt == "WEBP" else {})))
    assert out.shape == (8, 16, 3) and out.dtype == np.uint8


def test_transparent_pixels_show_on_white():
    out = read_image(encode(Image.new("RGBA", (4, 4), (255, 0, 0, 0)), "PNG"))
    assert (out == 255).all()


def test_16bit_grey_is_scaled_not_clipped():
    im = Image.fromarray(np.full((4, 4), 32896, np.uint16))  # mid grey in 16 bits
    out = read_image(encode(im, "PNG"))
    assert (out == 128).all()


def png_declaring(width: int, height: int) -> bytes:
    data = bytearray(encode(Image.new("RGB", (1, 1)), "PNG"))
    struct.pack_into(">II", data, 16, width, height)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def test_too_many_pixels_refused_from_header():
    with pytest.raises(ImageError, match=r"3000x2000 = 6.0 megapixels, above the limit of 4 MP"):
        read_image(png_declaring(3000, 2000), max_pixels=4_000_000, name="big.png")


def test_decompression_bomb_beyond_pillows_limit_refused():
    # 400 MP: Pillow itself refuses before we see the size; the message must still be ours.
    with pytest.raises(ImageError, match="megapixels"):
        read_image(png_declaring(20000, 20000), name="bomb.png")


def test_real_compressed_bomb_refused(tmp_path):
    # 10000x10000 1-bit PNG: ~20 KB on disk, 300 MB once decoded to RGB.
    path = tmp_path / "bomb.png"
    Image.new("1", (10000, 10000)).save(path)
    assert path.stat().st_size < 100_000
    with pytest.raises(ImageError, match="100.0 megapixels"):
        read_image(path)


@pytest.mark.parametrize("payload,match", [
    (b"just some text\n", "not an image in a format we read; use a JPEG, PNG, WebP or BMP file"),
    (b"", "the file is empty"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not an image"),
])
def test_non_images_refused(payload, match):
    with pytest.raises(ImageError, match=match):
        read_image(payload, name="x")


@pytest.mark.parametrize("brand", [b"heic", b"mif1", b"avif"])
def test_heif_photos_are_named_with_what_to_do(tmp_path, brand):
    header = b"\x00\x00\x00\x18ftyp" + brand + b"\x00\x00\x00\x00" + b"\x00" * 64
    path = tmp_path / "IMG_0001.HEIC"
    path.write_bytes(header)
    for source in (path, header):
        with pytest.raises(ImageError, match="HEIC/AVIF photo.*convert it to JPEG"):
            read_image(source)


@pytest.mark.parametrize("fmt, name", [("GIF", "a GIF"), ("TIFF", "a TIFF")])
def test_formats_we_do_not_read_are_named(fmt, name):
    with pytest.raises(ImageError, match=f"{name} file, which we do not read; save it as JPEG or PNG"):
        read_image(encode(Image.new("RGB", (4, 4)), fmt))


def test_empty_file_is_called_empty(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match=r"photo\.jpg: the file is empty \(0 bytes\)"):
        read_image(path)


def test_png_with_a_damaged_chunk_is_called_damaged_not_unknown(tmp_path):
    data = bytearray(encode(Image.new("RGB", (64, 64), (90, 120, 30)), "PNG"))
    data[40] ^= 0xFF  # inside the chunk after the header: Pillow cannot even identify the file
    path = tmp_path / "street.png"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError, match=r"street\.png: the image is damaged and cannot be decoded"):
        read_image(path)


def test_truncated_png_refused_with_file_name(tmp_path):
    data = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)), "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"cut\.png: the image is damaged or truncated"):
        read_image(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="folder"):
        read_image(tmp_path)


def test_colorize_blend_and_atomic_write(tmp_path):
    labels = np.array([[0, 1], [255, 1]], np.uint8)
    color = colorize(labels, [[1, 2, 3], [4, 5, 6]])
    assert color.tolist() == [[[1, 2, 3], [4, 5, 6]], [[0, 0, 0], [4, 5, 6]]]  # 255 (ignore) is black
    assert (blend(np.full_like(color, 9), color, 1.0) == color).all()
    path = write_png(tmp_path / "sub" / "a.png", labels)
    assert (np.asarray(Image.open(path)) == labels).all()
    assert [p.name for p in path.parent.iterdir()] == ["a.png"]  # no temporary file left
