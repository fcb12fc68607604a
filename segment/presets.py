"""The paper's models by name: every row of Table 7 and the MobileNetV3 rows of Table 8.

Paper figures are the paper's own (Cityscapes; CPU = one large core of a Pixel 3).
"""

from __future__ import annotations

from dataclasses import dataclass

from segment.config import ModelConfig


@dataclass(frozen=True)
class PaperFigures:
    row: str  # "T7-8", "T8-V3-OS32", ...
    miou: float | None = None  # Cityscapes val (Table 7) or test (Table 8), percent
    params: float | None = None  # parameters, backbone + head
    madds_full: float | None = None  # multiply-adds at 1024x2048
    madds_half: float | None = None  # multiply-adds at 512x1024
    cpu_full_ms: float | None = None
    cpu_half_ms: float | None = None


@dataclass(frozen=True)
class Preset:
    name: str
    config: ModelConfig
    paper: PaperFigures
    description: str


def _v2(width: float = 1.0, **kw) -> ModelConfig:
    return ModelConfig(backbone="mobilenet_v2", width_mult=width, **kw)


def _v3(**kw) -> ModelConfig:
    return ModelConfig(backbone="mobilenet_v3_large", **kw)


def _v3s(**kw) -> ModelConfig:
    return ModelConfig(backbone="mobilenet_v3_small", **kw)


M, B = 1e6, 1e9
_PRESETS = [
    Preset("mnv2-raspp-f256", _v2(rf2=False, head="raspp", head_channels=256),
           PaperFigures("T7-1", 72.84, 2.11 * M, 21.29 * B, None, 3900, 1020), "MobileNetV2, R-ASPP, F=256"),
    Preset("mnv2-rf2-raspp-f256", _v2(head="raspp", head_channels=256),
           PaperFigures("T7-2", 72.56, 1.15 * M, 13.68 * B, None, 3030, 793), "MobileNetV2 RF2, R-ASPP, F=256"),
    Preset("mnv2-rf2-lraspp-f256", _v2(head_channels=256),
           PaperFigures("T7-3", 72.97, 1.02 * M, 12.83 * B, None, 2980, 786), "MobileNetV2 RF2, LR-ASPP, F=256"),
    Preset("mnv2-rf2-lraspp-f128", _v2(),
           PaperFigures("T7-4", 72.74, 0.98 * M, 12.57 * B, None, 2890, 766), "MobileNetV2 RF2, LR-ASPP, F=128"),
    Preset("mnv3-raspp-f256", _v3(rf2=False, head="raspp", head_channels=256),
           PaperFigures("T7-5", 72.64, 3.60 * M, 18.43 * B, None, 3550, 906), "MobileNetV3-Large, R-ASPP, F=256"),
    Preset("mnv3-rf2-raspp-f256", _v3(head="raspp", head_channels=256),
           PaperFigures("T7-6", 71.91, 1.76 * M, 11.24 * B, None, 2600, 668), "MobileNetV3-Large RF2, R-ASPP, F=256"),
    Preset("mnv3-rf2-lraspp-f256", _v3(head_channels=256),
           PaperFigures("T7-7", 72.37, 1.63 * M, 10.33 * B, None, 2550, 659), "MobileNetV3-Large RF2, LR-ASPP, F=256"),
    # Table 8 gives this model's half-resolution MAdds (2.48B); Table 7 does not.
    Preset("mnv3-rf2-lraspp-f128", _v3(),
           PaperFigures("T7-8", 72.36, 1.51 * M, 9.74 * B, 2.48 * B, 2470, 657), "MobileNetV3-Large RF2, LR-ASPP, F=128 (default)"),
    Preset("mnv2x050-rf2-lraspp-f128", _v2(0.5),
           PaperFigures("T7-9", 68.57, 0.28 * M, 4.00 * B, None, 1590, 415), "MobileNetV2 x0.5 RF2, LR-ASPP, F=128"),
    Preset("mnv2x035-rf2-lraspp-f128", _v2(0.35),
           PaperFigures("T7-10", 66.83, 0.16 * M, 2.54 * B, None, 1270, 354), "MobileNetV2 x0.35 RF2, LR-ASPP, F=128"),
    Preset("mnv3small-rf2-lraspp-f128", _v3s(),
           PaperFigures("T7-11", 68.38, 0.47 * M, 2.90 * B, 0.74 * B, 1210, 327), "MobileNetV3-Small RF2, LR-ASPP, F=128 (small)"),
    # Table 8 (Cityscapes test). The OS 16 rows are the Table 7 models 8 and 11.
    Preset("mnv3-os16", _v3(),
           PaperFigures("T8-V3-OS16", 72.6, None, 9.74 * B, 2.48 * B, 2470, 657), "MobileNetV3-Large RF2, LR-ASPP, OS 16"),
    # OS 32: the release flags' image_pooling_stride=4,5; the window is ceil(769 / 32) = 25.
    Preset("mnv3-os32", _v3(output_stride=32, pool_stride=(4, 5)),
           PaperFigures("T8-V3-OS32", 72.0, None, 7.74 * B, 1.98 * B, 2060, 534), "MobileNetV3-Large RF2, LR-ASPP, OS 32"),
    Preset("mnv3small-os16", _v3s(),
           PaperFigures("T8-V3S-OS16", 69.4, None, 2.90 * B, 0.74 * B, 1210, 327), "MobileNetV3-Small RF2, LR-ASPP, OS 16"),
    Preset("mnv3small-os32", _v3s(output_stride=32, pool_stride=(4, 5)),
           PaperFigures("T8-V3S-OS32", 68.3, None, 2.06 * B, 0.53 * B, 1030, 275), "MobileNetV3-Small RF2, LR-ASPP, OS 32"),
]

PRESETS: dict[str, Preset] = {p.name: p for p in _PRESETS}
ALIASES = {"default": "mnv3-rf2-lraspp-f128", "small": "mnv3small-rf2-lraspp-f128"}
DEFAULT_PRESET = ALIASES["default"]


def get_preset(name: str) -> Preset:
    """A preset by name, alias ("default", "small") or paper row ("T7-8")."""
    key = ALIASES.get(name, name)
    if key in PRESETS:
        return PRESETS[key]
    for preset in _PRESETS:
        if preset.paper.row.lower() == name.lower():
            return preset
    choices = ", ".join(list(ALIASES) + list(PRESETS))
    raise ValueError(f"unknown model preset {name!r}; choose one of: {choices} (or a paper row such as T7-8)")


def list_presets() -> list[Preset]:
    return list(_PRESETS)
