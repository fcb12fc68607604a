"""Lite R-ASPP (Howard et al., "Searching for MobileNetV3", section 6.4, Fig. 10).

The reference is TF DeepLab's image-pooling branch with
``aspp_with_squeeze_and_excitation=1`` and its sum-merge decoder; docs/model.md
lists each detail and the flag it follows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

GATES = {"hard_sigmoid": nn.Hardsigmoid, "sigmoid": nn.Sigmoid}


def pool_window(feature_hw: tuple[int, int], window: tuple[int, int]) -> tuple[int, int]:
    """The pooling window actually used on a feature map of size ``feature_hw``.

    The paper's window (training crop / output stride, 49x49 for 769 crops) is
    larger than the feature map of small inputs; other implementations crash
    there. Shrinking the window to the map keeps the head defined for every
    input size, and at the training crop it is exactly global pooling.
    """
    return min(window[0], feature_hw[0]), min(window[1], feature_hw[1])


def pool_grid(feature_hw: tuple[int, int], window: tuple[int, int], stride: tuple[int, int],
              *, cover: bool = True) -> list[list[tuple[int, int]]]:
    """Per axis, the [start, end) extent of every pooling window on a feature map of ``feature_hw``.

    ``cover=True`` is ceil mode: a last, clipped window is added where the regular
    ones stop short of the map's edge, so every cell is pooled. Where the regular
    windows already end on the edge (the reference's 65x129 map at 1025x2049, 2x5
    windows of 49 at stride (16, 20); 33x65 at OS 32, 3x9 windows of 25 at (4, 5))
    nothing is added and the windows are the reference's.
    """
    kernel = pool_window(feature_hw, window)
    grid = []
    for size, k, s in zip(feature_hw, kernel, stride):
        count = (-(-(size - k) // s) if cover else (size - k) // s) + 1
        grid.append([(i * s, min(i * s + k, size)) for i in range(count)])
    return grid


class LRASPP(nn.Module):
    """LR-ASPP head.

    high (1/16) -> [1x1 conv F + BN + ReLU] * gate(1x1 conv F(avgpool_{window, stride}(high)))
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
        gate: str = "hard_sigmoid",
        gate_bias: bool = True,
        cover: bool = True,
        bn_momentum: float = 0.0003,
        bn_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if gate not in GATES:
            raise ValueError(f"gate must be one of {sorted(GATES)}, got {gate!r}")
        self.window = tuple(int(v) for v in window)
        self.stride = tuple(int(v) for v in stride)
        self.cover = cover
        self.cbr = nn.Sequential(
            nn.Conv2d(high_channels, inter_channels, 1, bias=False),
            nn.BatchNorm2d(inter_channels, eps=bn_eps, momentum=bn_momentum),
            nn.ReLU(inplace=True),
        )
        # The gate branch has no BN (Fig. 10; the reference's normalizer_fn=None).
        self.scale = nn.Sequential(
            nn.Conv2d(high_channels, inter_channels, 1, bias=gate_bias),
            GATES[gate](),
        )
        self.high_classifier = nn.Conv2d(inter_channels, num_classes, 1)
        self.low_classifier = nn.Conv2d(low_channels, num_classes, 1)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        feature_hw = (int(high.shape[-2]), int(high.shape[-1]))
        kernel = pool_window(feature_hw, self.window)
        # ceil_mode clips the last window to the map and (without padding) divides by the
        # cells it holds: an edge window is the mean of the cells it sees. A fixed
        # AvgPool per input size, so ONNX / OpenVINO get static shapes.
        pooled = F.avg_pool2d(high, kernel_size=kernel, stride=self.stride, ceil_mode=self.cover)
        gate = self.scale(pooled)
        if gate.shape[-2:] != high.shape[-2:]:
            gate = F.interpolate(gate, size=feature_hw, mode="bilinear", align_corners=False)
        x = self.cbr(high) * gate
        # "x2" in the paper; resizing to the low-level map's exact size keeps odd inputs aligned.
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.low_classifier(low) + self.high_classifier(x)
