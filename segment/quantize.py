"""int8 post-training quantization (static, QDQ) with ONNX Runtime's quantizer.

The QDQ model runs in ONNX Runtime and in OpenVINO (which turns the QDQ pairs
into its own int8 kernels), so one calibrated file serves both backends.
Calibration images are real photos: the user's folder (``--calib-data``), else
the street photos bundled with the package (``BUNDLED_PHOTOS``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from segment.errors import UserError
from segment.images import IMAGE_SUFFIXES, read_image

# Three CamVid frames shipped with the package (the demo's examples; photos/README.md).
# int8 is calibrated on them when no folder is given: on 50 labelled CamVid photos the
# large model's int8 then lost 0.15 / 0.17 mIoU at half / full, against 0.35 / 0.69 when
# calibrated on 16 synthetic scenes (docs/inference.md, "int8 with NNCF").
BUNDLED_PHOTOS = Path(__file__).resolve().parent / "photos"


def calibration_folder(calib_data: str | Path | None) -> Path | None:
    """The folder int8 is calibrated on: ``calib_data``, else the bundled photos (None, meaning
    synthetic scenes, only where a trimmed install lacks them)."""
    if calib_data is not None:
        return Path(calib_data)
    return BUNDLED_PHOTOS if any(p.suffix.lower() in IMAGE_SUFFIXES for p in BUNDLED_PHOTOS.glob("*")) else None


def synthetic_scene(height: int, width: int, *, seed: int) -> np.ndarray:
    """A street-like RGB uint8 test image: sky, buildings, road, a few cars, sensor noise.

    Not a dataset image; only meant to give activations a plausible range and
    a guard input with large uniform regions and real edges.
    """
    rng = np.random.default_rng(seed)
    img = np.empty((height, width, 3), np.float32)
    horizon = int(height * rng.uniform(0.35, 0.55))
    sky = np.array([rng.uniform(150, 220), rng.uniform(170, 230), rng.uniform(200, 255)], np.float32)
    img[:horizon] = sky * np.linspace(0.8, 1.0, horizon, dtype=np.float32)[:, None, None]
    img[horizon:] = np.array([90, 90, 95], np.float32) * rng.uniform(0.7, 1.2)
    x = 0
    while x < width:  # buildings
        w = int(rng.uniform(0.05, 0.2) * width)
        top = int(rng.uniform(0.05, 0.9) * horizon)
        img[top:horizon, x:x + w] = rng.uniform(40, 200, 3)
        x += w
    for _ in range(rng.integers(2, 6)):  # cars
        ch, cw = int(height * rng.uniform(0.05, 0.15)), int(width * rng.uniform(0.05, 0.15))
        cy, cx = int(rng.uniform(horizon, height - ch)), int(rng.uniform(0, width - cw))
        img[cy:cy + ch, cx:cx + cw] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def list_images(folder: str | Path, *, limit: int | None = None) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"calibration/guard folder {folder} does not exist; pass a folder of RGB images (png/jpg)")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"no images (png/jpg) found under {folder}; pass a folder of dataset images")
    if limit and len(files) > limit:
        # Spread the picks over the whole folder (cities/sequences), not the first few frames.
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    return files


def calibration_images(size: tuple[int, int], *, folder: str | Path | None = None, count: int = 16,
                       cover: bool = False) -> list[np.ndarray]:
    """``count`` RGB uint8 images at ``size`` (H, W): from ``folder`` if given, else synthetic.

    A photo is fitted inside ``size`` with its own aspect ratio and padded, as ``segment
    predict`` feeds it (``segment.sizes.fit_and_pad``): a 4:3 photo calibrating the 2:1 shape
    is not stretched, so the int8 ranges are those of the inputs the model will see.
    ``cover``: scaled to cover ``size`` and centre-cropped instead, so that every pixel is
    photo (the accuracy guard compares labels, and a flat padding has no meaningful ones)."""
    h, w = size
    if folder is None:
        try:  # the data package's procedural street scenes, when installed beside us
            from data.synthetic import draw_scene
        except ImportError:
            return [synthetic_scene(h, w, seed=1000 + i) for i in range(count)]
        return [draw_scene(size=(h, w), seed=1000 + i)[0] for i in range(count)]
    prepare = _covered if cover else _fitted
    return [prepare(read_image(p), (h, w)) for p in list_images(folder, limit=count)]


def _covered(photo: np.ndarray, run_hw: tuple[int, int]) -> np.ndarray:
    h, w = run_hw
    scale = max(h / photo.shape[0], w / photo.shape[1])
    sh, sw = max(h, round(photo.shape[0] * scale)), max(w, round(photo.shape[1] * scale))
    scaled = cv2.resize(photo, (sw, sh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top, left = (sh - h) // 2, (sw - w) // 2
    return np.ascontiguousarray(scaled[top:top + h, left:left + w])


def _fitted(photo: np.ndarray, run_hw: tuple[int, int]) -> np.ndarray:
    from segment.normalization import IMAGENET_MEAN
    from segment.sizes import RunPlan, fit_and_pad, fit_inside, pad_colour

    plan = RunPlan(run_hw=run_hw, valid_hw=fit_inside(photo.shape[:2], run_hw))
    return fit_and_pad(photo, plan, fill=pad_colour(IMAGENET_MEAN))


class _Reader:
    """onnxruntime.quantization.CalibrationDataReader over a list of images."""

    def __init__(self, input_name: str, images: Iterable[np.ndarray]) -> None:
        self._items = iter([{input_name: img[None]} for img in images])

    def get_next(self):
        return next(self._items, None)


def quantize_onnx(fp32_path: str | Path, out_path: str | Path, *, images: list[np.ndarray]) -> Path:
    """Write a static int8 QDQ model of ``fp32_path`` calibrated on ``images`` (1, H, W, 3 uint8 each)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from segment.atomic import write_path_atomic

    fp32_path, out_path = Path(fp32_path), Path(out_path)
    input_name = onnx.load(str(fp32_path), load_external_data=False).graph.input[0].name

    def write(tmp: Path) -> None:
        prepared = tmp.with_suffix(".pre.onnx")
        # Folds BN and infers shapes first, as ORT's quantization guide advises.
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(tmp), _Reader(input_name, images),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,  # depthwise convs have very different ranges per channel
            calibrate_method=CalibrationMethod.MinMax,
            # The input is uint8 pixels: keep the normalization (Sub/Div) in float.
            nodes_to_exclude=[],
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
        prepared.unlink(missing_ok=True)

    return write_path_atomic(out_path, write)
