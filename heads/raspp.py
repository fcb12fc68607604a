"""Reduced ASPP (Sandler et al., "MobileNetV2", section 6.3): the paper's baseline head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv_bn_relu(in_channels: int, out_channels: int, *, bn_momentum: float, bn_eps: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum),
        nn.ReLU(inplace=True),
    )


class RASPP(nn.Module):
    """R-ASPP head: a 1x1 conv branch and an image-pooling branch, concatenated,
    projected by a 1x1 conv (F) + BN + ReLU (DeepLab's concat projection, which the
    paper's parameter counts include), then a 1x1 conv to the classes.

    Only ``high`` is used; ``low`` is accepted so every head shares one signature.
    """

    def __init__(
        self,
        *,
        low_channels: int,
        high_channels: int,
        num_classes: int,
        inter_channels: int = 256,
        bn_momentum: float = 0.0003,
        bn_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        del low_channels  # R-ASPP has no low-level skip
        bn = {"bn_momentum": bn_momentum, "bn_eps": bn_eps}
        self.branch = _conv_bn_relu(high_channels, inter_channels, **bn)
        self.image_pool = _conv_bn_relu(high_channels, inter_channels, **bn)
        self.project = _conv_bn_relu(2 * inter_channels, inter_channels, **bn)
        # The reference drops 10% of the projection's outputs in training (keep_prob=0.9).
        self.dropout = nn.Dropout(p=0.1)
        self.classifier = nn.Conv2d(inter_channels, num_classes, 1)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        del low
        pooled = self.image_pool(high.mean(dim=(-2, -1), keepdim=True))
        # Broadcasting a 1x1 map is what bilinear upsampling of it gives, and exports without a resize.
        pooled = pooled.expand(-1, -1, high.shape[-2], high.shape[-1])
        return self.classifier(self.dropout(self.project(torch.cat([self.branch(high), pooled], dim=1))))
