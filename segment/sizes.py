"""Model input sizes: the one place that decides the shape the model runs at.

``half`` and ``full`` are the paper's Cityscapes inputs, 512x1024 and 1024x2048,
read as FRAMES a photo is fitted inside, turned to the photo's orientation: a
landscape photo fits within 512x1024 / 1024x2048, a portrait one within
1024x512 / 2048x1024. A 2:1 photo runs at exactly 512x1024 / 1024x2048, as in
the paper, and a landscape photo of any other shape at the paper's height (512
/ 1024 rows), so the things in it come out about as large as in the paper's
inputs: a 4:3 CamVid frame is enlarged 1.42x at half and 2.84x at full. Why
not an equal-area size: it made a 4:3 frame 1.69x / 3.47x, beyond the scales
the shipped weights do best at, and on CamVid drives held out of their
fine-tunes they scored 2.7-4.0 mIoU higher at full when fitted and 0.2-2.0
lower at half (docs/train.md, "Fitted inside the frame"), on 0.67-0.69x the
pixels. A portrait photo is the same scene turned, so its short side takes the
frame's short side (a 3:4 phone photo runs at 1376x1024 at full, not shrunk to
1024x768).

Compiled backends (ONNX Runtime, OpenVINO) build one graph per input shape, so
photos go to a few **shape buckets**, one per aspect ratio of ``ASPECTS``. A
bucket is the photo shape of its aspect ratio fitted inside the frame, each
side rounded up to a multiple of 32 (the network's largest stride; see
``bucket_shape``). A photo goes to the bucket of the nearest aspect ratio
(distance of the log ratios; wider than 2:1 or taller than 1:2 clamps to those),
is resized with its exact aspect ratio to fit inside the bucket, anchored at the
top-left, and the rest of the bucket is padded
(``fit_and_pad``). The labels of the valid region are cropped and resized back
to the photo's own size.

``native`` runs the photo at its own size, and an explicit ``HxW`` runs exactly
that shape (the photo is resized to it, whatever its aspect ratio).

``parse_size`` is the one parser of the size options of ``segment predict``,
``eval``, ``train --eval-size``, ``bench``, ``export`` and ``synth``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

SIZES: dict[str, tuple[int, int]] = {"half": (512, 1024), "full": (1024, 2048)}  # each budget's frame, landscape
STRIDE = 32  # the network's largest output stride: every bucket side is a multiple of it

# Bucket aspect ratios, width:height. The shapes photos come in: 2:1 (Cityscapes, the paper's
# inputs) and 16:9 (video, dash cams, phone screenshots), 3:2 (DSLR and mirrorless sensors), 4:3
# (phone cameras, CamVid), 1:1 (square crops), and the same ones upright, as phones shoot them.
# 2:1 and 1:2 are the extremes: phones' 19.5:9 and 20:9 go to 2:1 (8-11% off), panoramas clamp.
# Nine buckets, so at most nine compiled graphs per budget and backend.
ASPECTS: tuple[tuple[int, int], ...] = ((1, 2), (9, 16), (2, 3), (3, 4), (1, 1), (4, 3), (3, 2), (16, 9), (2, 1))

@dataclass(frozen=True)
class RunPlan:
    """How one image runs: the model's input shape and where the image sits in it."""

    run_hw: tuple[int, int]  # (H, W) the model runs at: a bucket, the explicit HxW or the image's own size
    valid_hw: tuple[int, int]  # (H, W) of the resized image inside it, at the top-left; the rest is padding
    budget: str | None = None  # "half" / "full" when the shape is one of that budget's buckets
    aspect: str | None = None  # the bucket's aspect ratio, "4:3"

    @property
    def padded(self) -> bool:
        return self.valid_hw != self.run_hw

    def describe(self) -> str:
        """'512x704 (half, 4:3 bucket; image 512x683)', for messages and the demo."""
        text = f"{self.run_hw[0]}x{self.run_hw[1]}"
        if self.budget:
            text += f" ({self.budget}, {self.aspect} bucket"
            text += f"; image {self.valid_hw[0]}x{self.valid_hw[1]} + padding)" if self.padded else ")"
        return text


def frame_for(budget_hw: tuple[int, int], aspect: tuple[int, int]) -> tuple[int, int]:
    """The budget's frame turned to the orientation of ``aspect`` (width, height): (H, W)."""
    short, long = sorted(budget_hw)
    return (short, long) if aspect[0] >= aspect[1] else (long, short)


def bucket_shape(budget_hw: tuple[int, int], aspect: tuple[int, int]) -> tuple[int, int]:
    """The bucket of aspect ratio ``aspect`` (width, height) for the frame ``budget_hw``.

    A photo of exactly that aspect ratio fitted inside the frame (turned to its
    orientation), each side rounded up to a multiple of 32: for 4:3 at half,
    512x704 (an image 512x683 in it); for 2:1, the frame itself. The frame's
    sides are multiples of 32, so the bucket never exceeds it.
    """
    frame = frame_for(budget_hw, aspect)
    h, w = fit_inside((aspect[1] * 1000, aspect[0] * 1000), frame)
    return math.ceil(h / STRIDE) * STRIDE, math.ceil(w / STRIDE) * STRIDE


@functools.lru_cache(maxsize=None)
def buckets(budget: str) -> dict[str, tuple[int, int]]:
    """{"4:3": (512, 704), ...}: the shape of every bucket of ``budget`` ("half" or "full")."""
    return {f"{w}:{h}": bucket_shape(SIZES[budget], (w, h)) for w, h in ASPECTS}


def bucket_for(image_hw: tuple[int, int], budget: str) -> tuple[str, tuple[int, int]]:
    """(aspect name, (H, W)) of the bucket an image of ``image_hw`` goes to at ``budget``."""
    h, w = image_hw
    ratio = math.log(w / h)
    w_a, h_a = min(ASPECTS, key=lambda a: abs(ratio - math.log(a[0] / a[1])))
    name = f"{w_a}:{h_a}"
    return name, buckets(budget)[name]


def fit_inside(image_hw: tuple[int, int], box_hw: tuple[int, int]) -> tuple[int, int]:
    """The largest (h, w) with ``image_hw``'s aspect ratio (rounded to whole pixels) inside ``box_hw``."""
    h, w = image_hw
    bh, bw = box_hw
    if bh * w <= bw * h:  # height-bound
        return bh, min(bw, max(1, (2 * w * bh + h) // (2 * h)))
    return min(bh, max(1, (2 * h * bw + w) // (2 * w))), bw


def plan_run(image_hw: tuple[int, int], size: str | tuple[int, int]) -> RunPlan:
    """The shape an image of ``image_hw`` runs at for ``size`` ("half", "full", "native" or (H, W))."""
    from segment.errors import UserError

    image_hw = (int(image_hw[0]), int(image_hw[1]))
    if isinstance(size, str):
        if size == "native":
            return RunPlan(run_hw=image_hw, valid_hw=image_hw)
        if size not in SIZES:
            raise UserError(f"unknown size {size!r}; choose half, full, native or (H, W)")
        if min(image_hw) < 1:
            raise UserError(f"the image is {image_hw[0]}x{image_hw[1]} pixels: nothing to segment")
        aspect, run_hw = bucket_for(image_hw, size)
        return RunPlan(run_hw=run_hw, valid_hw=fit_inside(image_hw, run_hw), budget=size, aspect=aspect)
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise UserError(f"unknown size {size!r}; choose half, full, native or (H, W)") from None
    return RunPlan(run_hw=(h, w), valid_hw=(h, w))


def budget_of(run_hw: tuple[int, int]) -> str | None:
    """The budget whose bucket ``run_hw`` is, or None (a native or explicit shape)."""
    run_hw = tuple(run_hw)
    for name in SIZES:
        if run_hw in buckets(name).values():
            return name
    return None


def parse_size(text: str, *, error: str | None = None, native: bool = True,
               minimum: int = 1) -> str | tuple[int, int]:
    """The one size-option parser: "half" | "full" | "native" | "HxW" -> the name, or (H, W).

    ``native=False`` refuses "native" (a command that needs one fixed shape);
    ``minimum``: the smallest side an HxW may have. Anything else raises
    UserError(``error``), by default a message listing what is accepted.
    """
    from segment.errors import UserError

    text = str(text).strip()
    key = text.lower()
    if key in SIZES or (native and key == "native"):
        return key
    try:
        h, w = (int(v) for v in key.split("x"))
    except ValueError:
        h = w = 0
    if h < minimum or w < minimum:
        accepted = "half, full, native or HxW" if native else "half, full or HxW"
        raise UserError(error or f"size {text!r}: use {accepted} such as 768x1536"
                                 + (f" (sides at least {minimum})" if minimum > 1 else ""))
    return h, w


def size_name(size: str | tuple[int, int]) -> str:
    """"half", "native" or "768x1536": how a parsed size is written back."""
    return size if isinstance(size, str) else f"{size[0]}x{size[1]}"


def pad_colour(mean: list[float] | np.ndarray) -> tuple[int, int, int]:
    """The padding pixel: the normalization mean (unit range), as uint8 RGB."""
    return tuple(int(round(float(m) * 255.0)) for m in mean)


# How an image is resized to the model's input, in `segment predict`, the demo and `segment eval`
# alike: bilinear (cv2.INTER_LINEAR) both ways. Area averaging alias-filters a downscale, but at
# factors that are not whole numbers OpenCV's INTER_AREA took 13-52 ms where bilinear took 1-4
# (a 2000x1500 or 4000x3000 photo to half or full; OpenCV's threads on 2 Zen 5 cores), and on
# CamVid val frames enlarged 4x and run at half it moved the mIoU by 0.15 (78.23 -> 78.38). At exactly 2x
# (a Cityscapes frame at half) the two give the same pixels.
# cv2.INTER_LINEAR, written as its value: the CLI imports this module to parse --size, and OpenCV
# is loaded only where an image is resized (tests/segment/test_sizes.py checks the value).
MODEL_INPUT_INTERPOLATION = 1


def fit_and_pad(image: np.ndarray, plan: RunPlan, *, fill: tuple[int, int, int], interpolation: int | None = None
                ) -> np.ndarray:
    """``image`` (H, W, 3) uint8 resized to ``plan.valid_hw`` and padded to ``plan.run_hw``.

    The padding goes below and to the right, so the image's pixel grid stays
    aligned with the network's strides and its top and left borders are those
    of an unpadded run. It is filled with the normalization mean colour
    (``pad_colour``: zero, to within half a grey level, after normalization)
    rather than by replicating the edges: a zero input is what the network's
    own convolution padding feeds it at every image border, so the photo's
    bottom and right edges look like an ordinary image edge, while replicated
    edges would be streaks of invented content that the network segments and
    that reach into the photo through the receptive fields and the head's
    pooling. (The padded labels are cropped away either way.)

    ``interpolation``: an OpenCV flag; None = ``MODEL_INPUT_INTERPOLATION``.
    """
    import cv2

    vh, vw = plan.valid_hw
    rh, rw = plan.run_hw
    h, w = image.shape[:2]
    if (h, w) != (vh, vw):
        image = cv2.resize(image, (vw, vh), interpolation=MODEL_INPUT_INTERPOLATION if interpolation is None
                           else interpolation)
    if (vh, vw) != (rh, rw):
        image = cv2.copyMakeBorder(image, 0, rh - vh, 0, rw - vw, cv2.BORDER_CONSTANT, value=tuple(fill))
    return np.ascontiguousarray(image)


def bucket_table() -> list[tuple[str, tuple[int, int], tuple[int, int]]]:
    """[(aspect, half shape, full shape)] for docs and tests."""
    return [(name, buckets("half")[name], buckets("full")[name]) for name in buckets("half")]
