"""Loss functions: cross-entropy by default, segmentation-models-pytorch's others on request."""

from __future__ import annotations

import torch
from torch import nn

IGNORE_INDEX = 255
LOSSES = ("ce", "lovasz", "dice", "focal", "ce+lovasz")


class SumOfLosses(nn.Module):
    def __init__(self, *, losses: list[nn.Module]) -> None:
        super().__init__()
        self.losses = nn.ModuleList(losses)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(loss(logits, target) for loss in self.losses)


def build_loss(name: str, *, class_weights: torch.Tensor | None = None) -> nn.Module:
    """The loss ``name`` with label 255 ignored; ``class_weights`` apply to cross-entropy only."""
    if name == "ce":
        return nn.CrossEntropyLoss(weight=class_weights, ignore_index=IGNORE_INDEX)
    # smp's losses are well tested and take ignore_index; we do not rewrite them.
    from segmentation_models_pytorch import losses as smp_losses

    if name == "lovasz":
        return smp_losses.LovaszLoss(mode="multiclass", ignore_index=IGNORE_INDEX)
    if name == "dice":
        return smp_losses.DiceLoss(mode="multiclass", ignore_index=IGNORE_INDEX)
    if name == "focal":
        return smp_losses.FocalLoss(mode="multiclass", ignore_index=IGNORE_INDEX)
    if name == "ce+lovasz":
        return SumOfLosses(losses=[build_loss("ce", class_weights=class_weights), build_loss("lovasz")])
    raise ValueError(f"unknown loss {name!r}; choose one of: {', '.join(LOSSES)}")


def enet_class_weights(dataset, *, num_classes: int, c: float = 1.02) -> torch.Tensor:
    """ENet's class weighting 1 / ln(c + p_class) from the training labels' frequencies.

    Classes that never occur get weight 0 (they cannot be learned from this set
    anyway, and a large weight would only add noise).
    """
    import numpy as np

    from data.imread import read_label

    counts = np.zeros(num_classes, dtype=np.int64)
    for _, label_path in dataset.files:
        ids = dataset.to_train_ids(read_label(label_path), label_path)
        counts += np.bincount(ids.reshape(-1), minlength=256)[:num_classes]
    p = counts / max(1, counts.sum())
    w = np.where(counts > 0, 1.0 / np.log(c + p), 0.0)
    return torch.tensor(w, dtype=torch.float32)
