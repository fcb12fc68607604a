"""Prediction at a fixed model size that keeps the photo's aspect ratio (letterboxing).

``Predictor.predict(image, size="half")`` resizes any image to 512x1024, which
stretches a 4:3 photo 1.5x sideways. Here the image is scaled to fit inside the
model size and the rest is padded with the normalization mean (zero once
normalized), so objects keep their shape; the labels of the padding are
dropped. For 2:1 images (Cityscapes) it is exactly the plain resize. The model
size stays one of two fixed sizes, so backends built per size (ONNX Runtime,
OpenVINO, ``backend="auto"``) are reused for every photo.

Measured on 20 CamVid val images (480x360, 4:3) with an early CamVid
checkpoint (iteration 500), model input 512x1024: letterboxed 38.9 mIoU /
68.2% pixel accuracy, stretched 35.2 / 67.4 (the image's own size: 47.4 /
80.0); see docs/demo.md.
"""

from __future__ import annotations

import dataclasses
import time

import cv2
import numpy as np

from segment.predict import SIZES, Prediction


def fit_inside(image_hw: tuple[int, int], model_hw: tuple[int, int]) -> tuple[int, int]:
    """The (H, W) of the image scaled to fit inside ``model_hw`` with its aspect ratio."""
    (h, w), (mh, mw) = image_hw, model_hw
    scale = min(mh / h, mw / w)
    return min(mh, max(1, round(h * scale))), min(mw, max(1, round(w * scale)))


def predict_letterboxed(predictor, image: np.ndarray, *, size: str | tuple[int, int] = "half") -> Prediction:
    """``predictor.predict`` at "half", "full" or (H, W), aspect ratio kept; "native" is passed through."""
    if size == "native":
        return predictor.predict(image, size="native")
    start = time.perf_counter()
    model_hw = tuple(SIZES[size]) if isinstance(size, str) else tuple(int(v) for v in size)
    h, w = image.shape[:2]
    fh, fw = fit_inside((h, w), model_hw)
    if (fh, fw) == model_hw:
        return predictor.predict(image, size=model_hw)  # same aspect ratio: nothing to pad
    top, left = (model_hw[0] - fh) // 2, (model_hw[1] - fw) // 2
    canvas = np.empty((*model_hw, 3), np.uint8)
    mean = getattr(predictor, "mean", None)  # 0..255 RGB; padding there is zero once normalized
    canvas[:] = 128 if mean is None else np.clip(np.rint(np.asarray(mean, np.float32).reshape(-1)[:3]), 0, 255)
    shrink = fh < h
    canvas[top:top + fh, left:left + fw] = cv2.resize(
        image, (fw, fh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    prediction = predictor.predict(canvas, size=model_hw)
    labels = prediction.labels[top:top + fh, left:left + fw]
    if (fh, fw) != (h, w):
        labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
    return dataclasses.replace(prediction, labels=np.ascontiguousarray(labels),
                               total_ms=(time.perf_counter() - start) * 1e3)
