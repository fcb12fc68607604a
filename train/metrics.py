"""Streaming confusion matrix -> per-class IoU, mIoU, pixel accuracy.

The matrix is counted with one ``bincount`` per batch (as torchvision's
segmentation reference does). IoU and mIoU are ``segment.accuracy.class_iou``
and ``mean_iou``, the definition the accuracy guard uses too; it follows the
official Cityscapes evaluator (cityscapesscripts' evalPixelLevelSemanticLabeling):
a class with no ground truth and no prediction has no IoU (NaN) and is left
out of the mean, and a pixel predicted as an unscored class still counts as a
miss of its true class.
"""

from __future__ import annotations

import math

import torch

from segment.accuracy import class_iou, mean_iou

IGNORE_INDEX = 255


class ConfusionMatrix:
    """``mat[t, p]`` = pixels of true class t predicted as p (ignore pixels skipped)."""

    def __init__(self, *, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mat = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: ``pred`` and ``target`` are integer tensors of the same shape."""
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} != label shape {tuple(target.shape)}")
        n = self.num_classes
        t = target.reshape(-1).to(torch.int64)
        p = pred.reshape(-1).to(torch.int64)
        keep = (t != self.ignore_index) & (t >= 0) & (t < n)
        counts = torch.bincount(n * t[keep] + p[keep], minlength=n * n)
        self.mat += counts.reshape(n, n).to(self.mat.device)

    def reset(self) -> None:
        self.mat.zero_()

    def iou(self) -> list[float]:
        return [float(v) for v in class_iou(self.mat.cpu().numpy())]

    def pixel_accuracy(self) -> float:
        total = int(self.mat.sum())
        return float(self.mat.diag().sum()) / total if total else math.nan

    def summary(self, *, classes: list[str] | tuple[str, ...], eval_ids: list[int] | tuple[int, ...]) -> dict:
        """``{"miou", "per_class", "pixel_acc"}`` over the scored classes ``eval_ids`` (fractions).

        ``pixel_acc`` counts every labelled pixel of a scored class.
        """
        iou = self.iou()
        per_class = {classes[i]: iou[i] for i in eval_ids}
        m = self.mat
        scored = torch.tensor(list(eval_ids), dtype=torch.int64)
        total = int(m[scored].sum())
        correct = int(m.diag()[scored].sum())
        return {
            "miou": mean_iou(m.cpu().numpy(), eval_ids),
            "per_class": per_class,
            "pixel_acc": correct / total if total else math.nan,
        }


def format_table(summary: dict, *, title: str = "") -> str:
    """A per-class IoU table (percent) for the terminal."""
    width = max(12, *(len(c) for c in summary["per_class"]))
    lines = [title] if title else []
    lines.append(f"{'class':<{width}}  IoU %")
    lines.append("-" * (width + 8))
    for name, v in summary["per_class"].items():
        lines.append(f"{name:<{width}}  {'  n/a' if math.isnan(v) else f'{100 * v:5.1f}'}")
    lines.append("-" * (width + 8))
    lines.append(f"{'mIoU':<{width}}  {100 * summary['miou']:5.1f}")
    lines.append(f"{'pixel acc':<{width}}  {100 * summary['pixel_acc']:5.1f}")
    return "\n".join(lines)
