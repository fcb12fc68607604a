"""Model assembly: backbone + head, logits at the input's size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from heads import LRASPP, RASPP
from segment.backbones import build_backbone
from segment.config import ModelConfig


class Segmenter(nn.Module):
    def __init__(self, *, backbone: nn.Module, head: nn.Module, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.config = config  # what build_model was given; part of the export cache key

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
            gate=config.gate,
            gate_bias=config.gate_bias,
            cover=config.pool_cover,
            bn_momentum=config.head_bn_momentum,
            bn_eps=config.head_bn_eps,
        )
    if config.head == "raspp":
        return RASPP(
            low_channels=low.channels,
            high_channels=high.channels,
            num_classes=config.num_classes,
            inter_channels=config.head_channels,
            bn_momentum=config.head_bn_momentum,
            bn_eps=config.head_bn_eps,
        )
    raise ValueError(f"unknown head {config.head!r}; choose 'lraspp' or 'raspp'")


def build_model(config: ModelConfig) -> Segmenter:
    backbone = build_backbone(
        name=config.backbone,
        width_mult=config.width_mult,
        output_stride=config.output_stride,
        rf2=config.rf2,
        first_atrous_rate=config.first_atrous_rate,
        first_atrous_residual=config.first_atrous_residual,
        bn_momentum=config.backbone_bn_momentum,
        bn_eps=config.backbone_bn_eps,
    )
    return Segmenter(backbone=backbone, head=build_head(config, backbone.output_specs), config=config)
