"""Augmentation pipelines (albumentations 2.x).

Every pipeline is called as ``t(image=rgb_uint8_HxWx3, mask=trainid_uint8_HxW)``
and returns a dict with ``"image"`` (float32 tensor 3xHxW, normalized with
MEAN/STD) and ``"mask"`` (uint8 tensor HxW). The datasets turn the mask into
int64.

Training follows DeepLab's Cityscapes recipe, which the MobileNetV3 paper used:
random scale 0.5-2.0, pad (image: the mean colour, which normalizes to zero, as
DeepLab pads with its mean pixel; mask 255 = ignore) up to the crop, random
769x769 crop, horizontal flip. Masks are always resampled nearest-neighbour so
they hold only trainIds and 255.
"""

from __future__ import annotations

import math

from typing import Any

import albumentations as A
import cv2
import numpy as np
from albumentations.pytorch import ToTensorV2

from segment.normalization import IMAGENET_MEAN as MEAN, IMAGENET_STD as STD

from .labels import IGNORE_INDEX

# MEAN, STD (ImageNet statistics on [0, 1] pixels) are segment.normalization's. They are stored
# in every checkpoint (segment.checkpoint) so that inference normalizes exactly as training did.


def _normalize() -> list[A.BasicTransform]:
    return [A.Normalize(mean=MEAN, std=STD, max_pixel_value=255.0), ToTensorV2()]


class RandomScaleCrop(A.DualTransform):
    """Random scale, then a random crop padded to ``size``, in one resampling pass.

    Same distribution as ``RandomScale -> PadIfNeeded -> RandomCrop`` but it
    never builds the scaled full image: at scale 2 a 1024x2048 frame would
    become 2048x4096 (25 MB) only for a 769x769 window to be kept. One
    ``cv2.warpAffine`` computes just the output pixels, and pixels that fall
    outside the source (the padding) get ``fill`` / mask 255. Where the scaled
    image is smaller than the crop, it lands at a random place inside it.
    """

    def __init__(
        self,
        *,
        size: tuple[int, int] = (769, 769),  # (height, width) of the output crop
        scale: tuple[float, float] = (0.5, 2.0),  # range of the scale factor
        fill: float | tuple[float, float, float] = 0.0,  # image value outside the source (one, or per channel)
        fill_mask: float = IGNORE_INDEX,  # mask value outside the source: ignored
        log_scale: bool = False,  # draw log(scale) uniformly: as many shrinks as enlargements of each factor
        p: float = 1.0,
    ):
        super().__init__(p=p)
        self.size = tuple(size)
        self.scale = tuple(scale)
        self.log_scale = log_scale
        self.fill = fill
        self.fill_mask = fill_mask

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        h, w = params["shape"][:2]
        ch, cw = self.size
        if self.log_scale:
            s = math.exp(self.py_random.uniform(math.log(self.scale[0]), math.log(self.scale[1])))
        else:
            s = self.py_random.uniform(*self.scale)
        sh, sw = int(round(h * s)), int(round(w * s))
        # Offset of the crop in the scaled image; negative = the image sits inside the crop.
        y0 = self.py_random.randint(min(0, sh - ch), max(0, sh - ch))
        x0 = self.py_random.randint(min(0, sw - cw), max(0, sw - cw))
        sy, sx = sh / h, sw / w
        # Destination -> source map, pixel centres aligned as cv2.resize aligns them.
        matrix = np.array(
            [[1.0 / sx, 0.0, (x0 + 0.5) / sx - 0.5], [0.0, 1.0 / sy, (y0 + 0.5) / sy - 0.5]],
            dtype=np.float64,
        )
        # Output pixels that come from the image; the rest is padding. Exactly the region
        # that scale -> pad -> crop would fill with image pixels.
        inside = (max(0, -y0), min(ch, sh - y0), max(0, -x0), min(cw, sw - x0))
        return {"matrix": matrix, "inside": inside}

    def _warp(self, img: np.ndarray, matrix: np.ndarray, inside, interpolation: int, fill: float) -> np.ndarray:
        ch, cw = self.size
        # Replicate at the border so bilinear never blends the fill into edge pixels, then
        # write the fill outside the image's footprint (sharp padding, as with PadIfNeeded).
        out = cv2.warpAffine(img, matrix, (cw, ch), flags=interpolation | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REPLICATE)
        if img.ndim == 3 and out.ndim == 2:  # cv2 drops a trailing channel of size 1
            out = out[..., None]
        top, bottom, left, right = inside
        if top > 0:
            out[:top] = fill
        if bottom < ch:
            out[bottom:] = fill
        if left > 0:
            out[:, :left] = fill
        if right < cw:
            out[:, right:] = fill
        return out

    def apply(self, img: np.ndarray, matrix: np.ndarray, inside, **params: Any) -> np.ndarray:
        return self._warp(img, matrix, inside, cv2.INTER_LINEAR, self.fill)

    def apply_to_mask(self, mask: np.ndarray, matrix: np.ndarray, inside, **params: Any) -> np.ndarray:
        return self._warp(mask, matrix, inside, cv2.INTER_NEAREST, self.fill_mask)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("size", "scale", "fill", "fill_mask", "log_scale")


def photometric_transforms() -> list[A.BasicTransform]:
    """Exposure, contrast, saturation and white balance of other cameras and light (``--photometric``).

    Not in the paper's recipe (Cityscapes frames come from one camera). On CamVid val at
    half size the bundled models, trained without it, lose 20-26 mIoU at 0.6x contrast or a
    warm white balance (docs/train.md, "Robustness to colour and exposure"). Image only:
    the labels do not change."""
    return [
        A.ColorJitter(brightness=(0.6, 1.4), contrast=(0.5, 1.5), saturation=(0.5, 1.5), hue=(-0.03, 0.03), p=0.8),
        A.PlanckianJitter(mode="blackbody", p=0.5),  # the colour of daylight, from warm to cool
    ]


def train_transform(
    *,
    crop: tuple[int, int] = (769, 769),
    scale: tuple[float, float] = (0.5, 2.0),
    hflip: bool = True,
    fast: bool = True,
    log_scale: bool = False,
    photometric: bool = False,
    pad_fill: str = "mean",
) -> A.Compose:
    """The paper's training augmentation.

    ``fast=True`` (default) scales and crops in one warp (:class:`RandomScaleCrop`);
    ``fast=False`` runs the textbook albumentations chain (RandomScale,
    PadIfNeeded, RandomCrop), kept as the reference the fast path is measured
    and tested against (uniform scale only). ``log_scale``: draw the scale
    log-uniformly (fast path). ``photometric``: colour and exposure changes
    after the crop (:func:`photometric_transforms`). ``pad_fill``: what pads a
    scaled image smaller than the crop (:func:`pad_value`).
    """
    ch, cw = crop
    if log_scale and not fast:
        raise ValueError("log_scale needs the fast path (fast=True)")
    fill = pad_value(pad_fill)
    if fast:
        geometric: list[A.BasicTransform] = [RandomScaleCrop(size=(ch, cw), scale=scale, log_scale=log_scale,
                                                             fill=fill)]
    else:
        geometric = [
            A.RandomScale(
                scale_limit=(scale[0] - 1.0, scale[1] - 1.0),  # albumentations adds 1
                interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST, p=1.0,
            ),
            A.PadIfNeeded(
                min_height=ch, min_width=cw, position="random",
                border_mode=cv2.BORDER_CONSTANT, fill=fill, fill_mask=IGNORE_INDEX,
            ),
            A.RandomCrop(height=ch, width=cw),
        ]
    if hflip:
        geometric.append(A.HorizontalFlip(p=0.5))
    return A.Compose(geometric + (photometric_transforms() if photometric else []) + _normalize())


PAD_FILLS = ("mean", "black")


def pad_value(pad_fill: str) -> tuple[float, float, float]:
    """The uint8 RGB value that pads training crops: "mean", the normalization mean, which
    normalizes to zero, as DeepLab pads with its mean pixel (and as ``segment predict`` pads);
    "black", 0, which normalizes to about -2 (what the shipped weights were trained with)."""
    if pad_fill not in PAD_FILLS:
        raise ValueError(f"unknown pad fill {pad_fill!r}; choose one of {', '.join(PAD_FILLS)}")
    from segment.sizes import pad_colour

    return tuple(float(v) for v in pad_colour(MEAN)) if pad_fill == "mean" else (0.0, 0.0, 0.0)


class ResizeImageOnly(A.ImageOnlyTransform):
    """Resize the image and leave the mask alone.

    Evaluation at "half" runs the model on a 512x1024 image but scores at the
    label's full 1024x2048 (the prediction is upsampled), as the paper's
    Table 7 does: so only the image may be resized.
    """

    def __init__(self, *, size: tuple[int, int], p: float = 1.0):
        super().__init__(p=p)
        self.size = tuple(size)

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        from segment.sizes import MODEL_INPUT_INTERPOLATION

        h, w = self.size
        if img.shape[:2] == (h, w):
            return img
        return cv2.resize(img, (w, h), interpolation=MODEL_INPUT_INTERPOLATION)  # as segment predict resizes

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("size",)


class FitAndPadImageOnly(A.ImageOnlyTransform):
    """"half" / "full" for evaluation, as ``segment predict`` runs them (``segment.sizes``).

    The image keeps its aspect ratio: resized to fit its shape bucket of the pixel
    budget and padded below and to the right with the mean colour. The mask stays
    at its full size; ``train.engine.evaluate`` crops the padding off the logits
    before scoring them at the label's size.
    """

    def __init__(self, *, size: str, p: float = 1.0):
        super().__init__(p=p)
        self.size = size

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        from segment.sizes import fit_and_pad, pad_colour, plan_run

        # Resized as segment predict resizes (segment.sizes.MODEL_INPUT_INTERPOLATION).
        return fit_and_pad(img, plan_run(img.shape[:2], self.size), fill=pad_colour(MEAN))

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("size",)


def _per_pixel(change):
    """A change of float RGB values, as a function of a uint8 photo (clipped back to 0-255)."""
    return lambda img: np.clip(change(img.astype(np.float32)), 0, 255).astype(np.uint8)


# Fixed changes of a photo's colour and exposure for 'segment eval --photo-change': how a model
# holds up on photos from another camera or light, with the labels unchanged.
PHOTO_CHANGES = {
    "darker": _per_pixel(lambda x: x * 0.6),
    "brighter": _per_pixel(lambda x: x * 1.4),
    "low-contrast": _per_pixel(lambda x: (x - 128) * 0.6 + 128),
    "warm": _per_pixel(lambda x: x * np.array([1.15, 1.0, 0.8], np.float32)),  # tungsten-like white balance
    "cool": _per_pixel(lambda x: x * np.array([0.85, 1.0, 1.2], np.float32)),  # shade / overcast-like
}


class PhotoChange(A.ImageOnlyTransform):
    """One of PHOTO_CHANGES, applied to every image (deterministic)."""

    def __init__(self, *, name: str, p: float = 1.0):
        super().__init__(p=p)
        if name not in PHOTO_CHANGES:
            raise ValueError(f"unknown photo change {name!r}; choose from {', '.join(PHOTO_CHANGES)}")
        self.name = name

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        return PHOTO_CHANGES[self.name](img)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("name",)


def eval_transform(*, size: str | tuple[int, int] | None = None, photo_change: str | None = None) -> A.Compose:
    """Evaluation pipeline: normalize; with a ``size`` also resize the image (only).

    ``size=None`` or "native" keeps the image's own size (full-resolution
    evaluation); "half" and "full" fit the image inside the paper's inputs (512x1024
    and 1024x2048, turned for a portrait image: a 2:1 image runs at exactly
    those, others keep their aspect ratio in a padded shape bucket, see
    ``segment.sizes``);
    ``(H, W)`` resizes to exactly that. The mask always stays at its full size.
    ``photo_change``: a key of PHOTO_CHANGES applied to the photo first.
    """
    steps: list[A.BasicTransform] = [PhotoChange(name=photo_change)] if photo_change else []
    if isinstance(size, str) and size != "native":
        steps.append(FitAndPadImageOnly(size=size))
    elif size is not None and not isinstance(size, str):
        steps.append(ResizeImageOnly(size=size))
    return A.Compose(steps + _normalize(), is_check_shapes=False)
