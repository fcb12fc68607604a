"""Model assembly: backbone + head, logits at the input's size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from heads import LRASPP, RASPP
from segment.backbones import build_backbone
from segment.config import ModelConfig


class Segmenter(nn.Module):
    def __init__(self, *, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        logits = self.head(features["low"], features["high"])
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def build_head(config: ModelConfig, output_specs: dict) -> nn.Module:
    low, high = output_specs["low"], output_specs["high"]
    if config.head == "lraspp":
        return LRASPP(
            low_channels=low.channels,
            high_channels=high.channels,
            num_classes=config.num_classes,
            inter_channels=config.head_channels,
            window=config.pool_window,
            stride=config.pool_stride,
        )
    if config.head == "raspp":
        return RASPP(
            low_channels=low.channels,
            high_channels=high.channels,
            num_classes=config.num_classes,
            inter_channels=config.head_channels,
        )
    raise ValueError(f"unknown head {config.head!r}; choose 'lraspp' or 'raspp'")


def build_model(config: ModelConfig) -> Segmenter:
    backbone = build_backbone(
        name=config.backbone,
        width_mult=config.width_mult,
        output_stride=config.output_stride,
        rf2=config.rf2,
    )
    return Segmenter(backbone=backbone, head=build_head(config, backbone.output_specs))
