"""MobileNetV3 + LR-ASPP semantic segmentation (Howard et al., "Searching for MobileNetV3", 2019)."""

from segment.config import ModelConfig
from segment.model import Segmenter, build_model
from segment.presets import DEFAULT_PRESET, get_preset, list_presets


def create_model(name: str = DEFAULT_PRESET, **overrides) -> Segmenter:
    """Build a preset (randomly initialised), e.g. ``create_model("default", num_classes=11)``."""
    from dataclasses import replace

    return build_model(replace(get_preset(name).config, **overrides))


__all__ = ["ModelConfig", "Segmenter", "build_model", "create_model", "get_preset", "list_presets", "DEFAULT_PRESET"]
