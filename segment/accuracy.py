"""The accuracy guard's measures, and the project's one definition of IoU and mIoU.

Two measures of how far a fast backend's labels are from torch fp32's: argmax
pixel agreement on the same inputs (any images will do), and the mIoU
difference on a labelled set (what users care about; int8 is only offered
where it is under 0.5 points).

IoU and mIoU (:func:`class_iou`, :func:`mean_iou`) follow the official
Cityscapes evaluator and are shared with ``segment eval`` and the trainer
(``train.metrics``): a class with no ground truth and no prediction has no IoU
(NaN) and is left out of the mean; the mean is over the dataset's scored
classes only; a pixel predicted as an unscored class still counts as a miss of
its true class.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

IGNORE = 255
MAX_MIOU_DROP = 0.5  # mIoU points on a labelled set; a precision that loses this much is never offered


def guard_passes(*, precision: str, agreement: float | None, miou_drop: float | None, min_agreement: float) -> bool:
    """The accuracy guard's verdict on a backend's precision, from its measures against torch fp32.

    Every precision fails at a mIoU drop of ``MAX_MIOU_DROP`` or more. Float precisions
    (fp32, bf16, mixed) must also agree with fp32 on ``min_agreement`` of the pixels:
    their differences are rounding, and more than that is a defect. int8 is judged by the
    labelled set's mIoU alone, and needs one: requantized activations move about 1% of
    the labels along class boundaries (99.3% agreement on CamVid photos at half) without
    moving what users measure (-0.04 mIoU there), so only the mIoU can tell a good int8
    model from a bad one.
    """
    if miou_drop is not None and miou_drop >= MAX_MIOU_DROP:
        return False
    if precision.split("+")[0] == "int8":  # "int8+bf16": int8 with its float layers at bf16
        return miou_drop is not None
    return agreement is None or agreement >= min_agreement


def agreement(labels: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of pixels where two label maps agree."""
    if labels.shape != reference.shape:
        raise ValueError(f"label maps differ in shape: {labels.shape} vs {reference.shape}")
    return float(np.mean(labels == reference))


def confusion(pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) counts, rows = target, ignoring target pixels >= num_classes (void)."""
    keep = target < num_classes
    idx = target[keep].astype(np.int64) * num_classes + pred[keep].astype(np.int64)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def class_iou(conf) -> np.ndarray:
    """IoU of each class from a confusion matrix ``conf[true, predicted]``; NaN where a class is in neither."""
    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1.0), np.nan)


def mean_iou(conf, classes: Iterable[int] | None = None) -> float:
    """mIoU as a fraction: the mean IoU over ``classes`` (the dataset's scored class ids; default all),
    classes without an IoU left out; NaN if none has one."""
    iou = class_iou(conf)
    scored = iou[list(classes)] if classes is not None else iou
    scored = scored[~np.isnan(scored)]
    return float(scored.mean()) if scored.size else float("nan")


def calibrate_batchnorm(model, images: list[np.ndarray], *, mean, std) -> None:
    """Set a randomly initialised model's BN statistics from real-looking images.

    A random model with default BN statistics (mean 0, var 1) predicts one class
    almost everywhere, so any backend "agrees" with it. With statistics measured
    on street scenes its labels vary across the image with small margins: a harsh,
    meaningful input for the accuracy guard of an untrained preset. Weights are
    untouched; the model is left in eval mode.
    """
    import torch

    from segment.batchnorm import recalibrate_batchnorm

    mean = np.asarray(mean, np.float32) * 255.0
    std = np.asarray(std, np.float32) * 255.0
    x = torch.from_numpy(np.stack([((im.astype(np.float32) - mean) / std).transpose(2, 0, 1) for im in images]))
    recalibrate_batchnorm(model, [x])
    model.eval()
