"""Model input sizes: the one place that decides the shape the model runs at.

``half`` and ``full`` are the paper's Cityscapes inputs, 512x1024 and 1024x2048,
read as PIXEL BUDGETS: a photo of any shape runs at about that many pixels with
its own aspect ratio (equal area, not fit-within: a portrait photo is not
shrunk to 512x256, and every request costs the paper's multiply-adds). A 2:1
photo runs at exactly 512x1024 / 1024x2048, as in the paper.

Compiled backends (ONNX Runtime, OpenVINO) build one graph per input shape, so
photos go to a few **shape buckets**, one per aspect ratio of ``ASPECTS``. A
bucket's (H, W) are multiples of 32 (the network's largest stride) with
H*W <= the budget, chosen so that a photo of the bucket's aspect ratio fills as
many pixels as possible (see ``bucket_shape``). A photo goes to the bucket of
the nearest aspect ratio (distance of the log ratios; wider than 2:1 or taller
than 1:2 clamps to those), is resized with its exact aspect ratio to fit inside
the bucket, anchored at the top-left, and the rest of the bucket is padded
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

SIZES: dict[str, tuple[int, int]] = {"half": (512, 1024), "full": (1024, 2048)}  # 2:1 shape of each budget
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
        """'608x832 (half, 4:3 bucket; image 608x811)', for messages and the demo."""
        text = f"{self.run_hw[0]}x{self.run_hw[1]}"
        if self.budget:
            text += f" ({self.budget}, {self.aspect} bucket"
            text += f"; image {self.valid_hw[0]}x{self.valid_hw[1]} + padding)" if self.padded else ")"
        return text


def _content(hw: tuple[int, int], aspect: float) -> float:
    """Pixels of the largest rectangle of ``aspect`` (width/height) inside ``hw``."""
    h, w = hw
    return h * h * aspect if w >= h * aspect else w * w / aspect


def bucket_shape(budget_hw: tuple[int, int], aspect: tuple[int, int]) -> tuple[int, int]:
    """The bucket of aspect ratio ``aspect`` (width, height) for a budget of ``H*W`` pixels.

    Among the shapes with sides multiples of 32 and at most the budget's pixels,
    the one into which an image of exactly that aspect ratio fits with the most
    pixels (ties: the shape closest to the aspect ratio). For 2:1 that is the
    budget's own shape; for 4:3 at half, 608x832 (an image 608x811 in it, 94% of
    the budget), where the exact 4:3 576x768 would hold only 84%.
    """
    budget = budget_hw[0] * budget_hw[1]
    a = aspect[0] / aspect[1]
    best, best_key = None, None
    for h in range(STRIDE, budget // STRIDE + 1, STRIDE):
        w = budget // h // STRIDE * STRIDE  # the widest that fits the budget
        if w < STRIDE:
            break
        # At this height the content grows with the width up to h * a and stays flat beyond:
        # the widest shape and the narrowest one as good as it are the only candidates.
        for width in {w, min(w, math.ceil(h * a / STRIDE) * STRIDE)}:
            key = (_content((h, width), a), -abs(math.log(width / h / a)))
            if best_key is None or key > best_key:
                best, best_key = (h, width), key
    return best


@functools.lru_cache(maxsize=None)
def buckets(budget: str) -> dict[str, tuple[int, int]]:
    """{"4:3": (608, 832), ...}: the shape of every bucket of ``budget`` ("half" or "full")."""
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
