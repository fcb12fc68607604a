"""What the demo does to one photo, without any web framework: testable on its own.

The photo is first fitted inside ``max_side`` pixels (2048 = the model's full
resolution width), so a 48 MP upload costs the page no more than a Cityscapes
frame; the model itself runs at "half" or "full", the photo fitted inside the paper's
512x1024 or 1024x2048 with its own aspect ratio (``segment.sizes``: a 4:3 photo
runs at 512x704 at half, padded where it does not fill its shape bucket), and
its labels come back at the fitted photo's size.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np

from segment.images import blend, colorize, fit_within, fitted_size
from segment.predict import Prediction

# Labels on the page: the photo is fitted inside the paper's inputs, keeping its aspect ratio
# (exactly 512x1024 / 1024x2048 for 2:1; segment.sizes).
RESOLUTIONS = {"half": "half (fitted in 512x1024)", "full": "full (fitted in 1024x2048)"}
DEFAULT_OPACITY = 0.5
DEFAULT_MAX_SIDE = 2048


@dataclass
class LegendEntry:
    train_id: int  # class index the model predicts
    name: str
    color: tuple[int, int, int]
    share: float  # fraction of the photo's pixels, 0..1


@dataclass
class DemoResult:
    photo: np.ndarray  # (H, W, 3) uint8, the photo as segmented (fitted within max_side)
    color: np.ndarray  # (H, W, 3) uint8 colour map
    labels: np.ndarray  # (H, W) uint8 class ids (trainIds)
    legend: list[LegendEntry]  # classes present, largest share first
    prediction: Prediction
    original_size: tuple[int, int]  # (H, W) of the upload

    def overlay(self, opacity: float = DEFAULT_OPACITY) -> np.ndarray:
        return blend(self.photo, self.color, opacity)


def ready_backend(predictor, image_hw: tuple[int, int], *, resolution: str, max_side: int = DEFAULT_MAX_SIDE) -> None:
    """Build (export, compile; for backend "auto", choose or default) the backend that
    ``segment_photo`` will run a photo of ``image_hw`` on, if it is not built yet.

    The demo calls this before it takes its model lock: a build can wait seconds for a
    background measurement (segment.autoselect.WORK_LOCK), and requests whose backends are
    built must not wait behind it. Predictors without per-shape backends need nothing."""
    backend_for = getattr(predictor, "backend_for", None)
    if backend_for is not None:
        backend_for(predictor.plan(fitted_size(image_hw, max_side), resolution).run_hw)


def legend(labels: np.ndarray, classes: list[str], palette: np.ndarray) -> list[LegendEntry]:
    counts = np.bincount(labels.ravel(), minlength=256)
    total = labels.size
    entries = [
        LegendEntry(train_id=i, name=classes[i], color=tuple(int(c) for c in palette[i]), share=counts[i] / total)
        for i in range(len(classes))
        if counts[i] > 0
    ]
    return sorted(entries, key=lambda e: -e.share)


def segment_photo(predictor, image: np.ndarray, *, resolution: str = "half",
                  max_side: int = DEFAULT_MAX_SIDE, original_hw: tuple[int, int] | None = None) -> DemoResult:
    """Segment one RGB uint8 photo at "half" or "full" resolution. ``original_hw``: the upload's
    own size where ``image`` was already reduced while reading (``segment.images.read_photo``)."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {sorted(RESOLUTIONS)}, got {resolution!r}")
    photo = fit_within(image, max_side)
    prediction = predictor.predict(photo, size=resolution)
    color = colorize(prediction.labels, predictor.palette)
    return DemoResult(photo=photo, color=color, labels=prediction.labels,
                      legend=legend(prediction.labels, predictor.classes, predictor.palette),
                      prediction=prediction, original_size=tuple(original_hw or image.shape[:2]))


def legend_html(entries: list[LegendEntry]) -> str:
    """A swatch, the class name and its share of pixels per row (names escaped: they come from the checkpoint)."""
    rows = "".join(
        "<tr>"
        f"<td><span class='swatch' style='background: rgb{e.color}'></span></td>"
        f"<td>{html.escape(e.name)}</td><td style='text-align:right'>{html.escape(_percent(e.share))}</td>"
        "</tr>"
        for e in entries
    )
    return f"<table class='legend'><tr><th></th><th>class</th><th>pixels</th></tr>{rows}</table>"


def _percent(share: float) -> str:
    return "<0.1%" if share < 0.0005 else f"{100 * share:.1f}%"  # a class present never shows as 0.0%


def summary_markdown(result: DemoResult, model_name: str) -> str:
    p = result.prediction
    h, w = result.photo.shape[:2]
    oh, ow = result.original_size
    fitted = f", fitted from {oh}x{ow}" if (oh, ow) != (h, w) else ""
    return (
        f"**{html.escape(model_name)}** on **{p.backend}** ({p.precision}), model ran at "
        f"**{_ran_at(p)}**: model **{p.model_ms:.0f} ms**, whole prediction "
        f"{p.total_ms:.0f} ms. Output {h}x{w}{fitted} (sizes are height x width)."
    )


def _ran_at(p: Prediction) -> str:
    """'512x704 (half, 4:3 bucket: photo resized to 512x683, the rest padded)'."""
    h, w = p.input_size
    text = f"{h}x{w}"
    if p.bucket:
        text += f" ({p.size}, {p.bucket} bucket"
        vh, vw = p.valid_size
        text += f": photo resized to {vh}x{vw}, the rest padded)" if (vh, vw) != (h, w) else ")"
    return text


def summary_dict(result: DemoResult, model_name: str) -> dict:
    """Machine-readable result for API users (the JSON output)."""
    p = result.prediction
    return {
        "model": model_name,
        "backend": p.backend,
        "precision": p.precision,
        "model_input_hw": list(p.input_size),
        "model_valid_hw": list(p.valid_size),  # the photo inside the model input (top-left); the rest is padding
        "bucket": p.bucket,  # aspect-ratio bucket of the resolution's pixel budget ("4:3"), or None
        "output_hw": list(result.photo.shape[:2]),
        "original_hw": list(result.original_size),
        "model_ms": round(p.model_ms, 2),
        "total_ms": round(p.total_ms, 2),
        "classes": [{"train_id": e.train_id, "name": e.name, "share": round(e.share, 6)} for e in result.legend],
    }
