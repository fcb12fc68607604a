"""Lite R-ASPP (Howard et al., "Searching for MobileNetV3", section 6.4, Fig. 10)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pool_window(feature_hw: tuple[int, int], window: tuple[int, int]) -> tuple[int, int]:
    """The pooling window actually used on a feature map of size ``feature_hw``.

    The paper's window (training crop / output stride, 49x49 for 769 crops) is
    larger than the feature map of small inputs; other implementations crash
    there. Shrinking the window to the map keeps the head defined for every
    input size, and at the training crop it is exactly global pooling.
    """
    return min(window[0], feature_hw[0]), min(window[1], feature_hw[1])


class LRASPP(nn.Module):
    """LR-ASPP head.

    high (1/16) -> [1x1 conv F + BN + ReLU] * sigmoid(1x1 conv F(avgpool_{window, stride}(high)))
    -> bilinear x2 to the low-level size -> 1x1 conv to classes
    + 1x1 conv of the low-level (1/8) feature to classes.
    """

    def __init__(
        self,
        *,
        low_channels: int,
        high_channels: int,
        num_classes: int,
        inter_channels: int = 128,
        window: tuple[int, int] = (49, 49),
        stride: tuple[int, int] = (16, 20),
    ) -> None:
        super().__init__()
        self.window = tuple(int(v) for v in window)
        self.stride = tuple(int(v) for v in stride)
        self.cbr = nn.Sequential(
            nn.Conv2d(high_channels, inter_channels, 1, bias=False),
            nn.BatchNorm2d(inter_channels),
            nn.ReLU(inplace=True),
        )
        # The gate branch has no BN: the paper's Fig. 10 shows pool -> 1x1 conv -> sigmoid.
        self.scale = nn.Sequential(
            nn.Conv2d(high_channels, inter_channels, 1, bias=False),
            nn.Sigmoid(),
        )
        self.high_classifier = nn.Conv2d(inter_channels, num_classes, 1)
        self.low_classifier = nn.Conv2d(low_channels, num_classes, 1)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        feature_hw = (int(high.shape[-2]), int(high.shape[-1]))
        kernel = pool_window(feature_hw, self.window)
        pooled = F.avg_pool2d(high, kernel_size=kernel, stride=self.stride)
        gate = self.scale(pooled)
        if gate.shape[-2:] != high.shape[-2:]:
            gate = F.interpolate(gate, size=feature_hw, mode="bilinear", align_corners=False)
        x = self.cbr(high) * gate
        # "x2" in the paper; resizing to the low-level map's exact size keeps odd inputs aligned.
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.low_classifier(low) + self.high_classifier(x)
