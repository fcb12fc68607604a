"""The one inference path: CLI, demo and benchmark all call ``Predictor.predict``.

(Minimal torch-only version; backends ONNX Runtime / OpenVINO come with issue 5.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from segment.checkpoint import load_checkpoint, model_from_checkpoint

SIZES = {"half": (512, 1024), "full": (1024, 2048)}


@dataclass
class Prediction:
    labels: np.ndarray  # (H, W) uint8 class indices (train ids) at the input image's size
    model_ms: float  # the model alone
    total_ms: float  # resize + normalize + model + argmax + resize back
    backend: str
    precision: str
    input_size: tuple[int, int]  # (H, W) the model ran at


class Predictor:
    def __init__(self, *, model: torch.nn.Module, classes: list[str], palette: list[list[int]],
                 mean: list[float], std: list[float], name: str = "model") -> None:
        self.model = model.eval()
        self.classes = list(classes)
        self.palette = np.asarray(palette, dtype=np.uint8)
        self.mean = np.asarray(mean, dtype=np.float32) * 255.0
        self.std = np.asarray(std, dtype=np.float32) * 255.0
        self.name = name
        self.backend = "torch"
        self.precision = "fp32"

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None) -> "Predictor":
        if path is None:
            from segment.bundled import default_checkpoint

            path = default_checkpoint()
        ckpt = load_checkpoint(path)
        norm = ckpt["normalization"]
        return cls(model=model_from_checkpoint(ckpt), classes=ckpt["classes"], palette=ckpt["palette"],
                   mean=norm["mean"], std=norm["std"], name=Path(path).stem)

    def predict(self, image: np.ndarray, *, size: str | tuple[int, int] = "half") -> Prediction:
        """Segment one RGB uint8 image (H, W, 3); ``size`` is "half", "full", "native" or (H, W)."""
        start = time.perf_counter()
        h, w = image.shape[:2]
        run_hw = (h, w) if size == "native" else SIZES.get(size, size)
        x = image if (h, w) == tuple(run_hw) else cv2.resize(image, (run_hw[1], run_hw[0]), interpolation=cv2.INTER_LINEAR)
        x = ((x.astype(np.float32) - self.mean) / self.std).transpose(2, 0, 1)[None]
        t0 = time.perf_counter()
        with torch.inference_mode():
            logits = self.model(torch.from_numpy(np.ascontiguousarray(x)))
        model_ms = (time.perf_counter() - t0) * 1e3
        labels = logits.argmax(1)[0].to(torch.uint8).numpy()
        if labels.shape != (h, w):
            labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
        return Prediction(labels=labels, model_ms=model_ms, total_ms=(time.perf_counter() - start) * 1e3,
                          backend=self.backend, precision=self.precision, input_size=tuple(run_hw))
