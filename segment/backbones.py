"""MobileNetV3 (Large, Small) and MobileNetV2 backbones for segmentation.

Built from torchvision's blocks (``InvertedResidual``, ``Conv2dNormActivation``)
with our own block tables, so RF2 and the atrous last stage follow the
reference TF DeepLab / slim code (the fidelity table in docs/model.md).

Every backbone declares its outputs in ``output_specs``:
``low`` is the 1/8 depthwise output used by the LR-ASPP skip and ``high`` the
1/16 (OS 16) or 1/32 (OS 32) feature; heads are built from this declaration.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch
from torch import nn
from torchvision.models._utils import _make_divisible
from torchvision.models.mobilenetv3 import InvertedResidual, InvertedResidualConfig
from torchvision.ops.misc import Conv2dNormActivation


@dataclass(frozen=True)
class OutputSpec:
    """What a backbone output is: its channel count and its stride w.r.t. the input."""

    channels: int
    stride: int


# One row per inverted-residual block, as in the paper's Tables 1 and 2:
# (kernel, expansion, out channels, squeeze-excite, activation, stride).
# The last stage (from the stride-2 block to 1/32) is what RF2 halves and
# atrous convolution dilates.
_V3_LARGE = (
    (3, 16, 16, False, "RE", 1),
    (3, 64, 24, False, "RE", 2),
    (3, 72, 24, False, "RE", 1),
    (5, 72, 40, True, "RE", 2),
    (5, 120, 40, True, "RE", 1),
    (5, 120, 40, True, "RE", 1),  # low: its depthwise output (120 ch, 1/8)
    (3, 240, 80, False, "HS", 2),
    (3, 200, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1),
    (3, 480, 112, True, "HS", 1),
    (3, 672, 112, True, "HS", 1),
    (5, 672, 160, True, "HS", 2),  # last stage
    (5, 960, 160, True, "HS", 1),
    (5, 960, 160, True, "HS", 1),
)
_V3_SMALL = (
    (3, 16, 16, True, "RE", 2),
    (3, 72, 24, False, "RE", 2),
    (3, 88, 24, False, "RE", 1),  # low: its depthwise output (88 ch, 1/8)
    (5, 96, 40, True, "HS", 2),
    (5, 240, 40, True, "HS", 1),
    (5, 240, 40, True, "HS", 1),
    (5, 120, 48, True, "HS", 1),
    (5, 144, 48, True, "HS", 1),
    (5, 288, 96, True, "HS", 2),  # last stage
    (5, 576, 96, True, "HS", 1),
    (5, 576, 96, True, "HS", 1),
)
# MobileNetV2 (Sandler et al., Table 2): (expansion t, channels c, repeats n, stride s).
_V2 = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),  # low: depthwise output of its last block (1/8)
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),  # last block: RF2 halves these two stages
    (6, 320, 1, 1),
)


def _last_stride8_index(strides: list[int]) -> int:
    """Index of the last block whose output is at 1/8 (counting the stem's stride 2)."""
    total, index = 2, -1
    for i, s in enumerate(strides):
        total *= s
        if total == 8:
            index = i
    return index


@dataclass(frozen=True)
class BlockGeometry:
    """One block's stride, dilation rate and residual, as built."""

    stride: int
    rate: int
    residual: bool


def atrous_schedule(strides: list[int], *, output_stride: int, first_rate: int = 1) -> list[tuple[int, int]]:
    """(stride, rate) per block under slim's ``mobilenet_base`` rule.

    Once the running stride (the stem's 2 included) equals ``output_stride``, a block
    that would have stride s runs with stride 1 and the current rate, and the rate is
    multiplied by s for the blocks after it. ``first_rate`` overrides the rate of the
    block whose stride was removed (2 reproduces torchvision's ``dilated=True``).
    """
    current, rate, out = 2, 1, []
    for s in strides:
        if current == output_stride:
            out.append((1, first_rate if s > 1 and rate == 1 else rate))
            rate *= s
        else:
            out.append((s, 1))
            current *= s
    return out


def _forward_blocks(blocks: nn.ModuleList, low_index: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the blocks; return (low, last output). ``low`` is block ``low_index``'s depthwise output."""
    low = x
    for i, block in enumerate(blocks):
        if i != low_index:
            x = block(x)
            continue
        # Split the block after its depthwise conv (+BN+activation) to tap it, as
        # DeepLab taps 'expanded_conv_N/depthwise_output'; the rest is the block's own forward.
        layers = block.block
        # Blocks are [expand 1x1]? + depthwise + [SE]? + project; the expansion is the only groups=1 conv before the depthwise.
        dw_end = 2 if layers[0][0].groups == 1 else 1
        low = layers[:dw_end](x)
        out = layers[dw_end:](low)
        x = out + x if block.use_res_connect else out
    return low, x


class MobileNetV3Backbone(nn.Module):
    """MobileNetV3-Large/Small trunk with optional RF2 and atrous last stage."""

    def __init__(
        self,
        *,
        variant: str = "large",
        width_mult: float = 1.0,
        output_stride: int = 16,
        rf2: bool = True,
        first_atrous_rate: int = 1,
        first_atrous_residual: bool = True,
        bn_momentum: float = 0.003,
        bn_eps: float = 1e-3,
    ) -> None:
        super().__init__()
        if variant not in ("large", "small"):
            raise ValueError(f"variant must be 'large' or 'small', got {variant!r}")
        if output_stride not in (16, 32):
            raise ValueError(f"output_stride must be 16 or 32, got {output_stride}")
        table = _V3_LARGE if variant == "large" else _V3_SMALL
        last_stage = len(table) - 3
        # RF2 halves the whole last stage: outputs and expansions, the first block's too.
        divider = 2 if rf2 else 1
        nominal = [row[5] for row in table]
        schedule = atrous_schedule(nominal, output_stride=output_stride, first_rate=first_atrous_rate)
        norm = partial(nn.BatchNorm2d, eps=bn_eps, momentum=bn_momentum)

        configs = []
        in_ch = 16
        for i, ((k, exp, out, se, act, _), (stride, rate)) in enumerate(zip(table, schedule)):
            in_stage = i >= last_stage
            configs.append(
                InvertedResidualConfig(
                    input_channels=in_ch,
                    kernel=k,
                    expanded_channels=exp // divider if in_stage else exp,
                    out_channels=out // divider if in_stage else out,
                    use_se=se,
                    activation=act,
                    stride=stride,
                    dilation=rate,
                    width_mult=width_mult,
                )
            )
            in_ch = out // divider if in_stage else out

        first = configs[0].input_channels
        self.stem = Conv2dNormActivation(3, first, kernel_size=3, stride=2, norm_layer=norm, activation_layer=nn.Hardswish)
        self.blocks = nn.ModuleList(InvertedResidual(c, norm) for c in configs)
        _drop_atrous_residual(self.blocks, nominal, schedule, keep=first_atrous_residual)
        last_in = configs[-1].out_channels
        self.last_conv = Conv2dNormActivation(last_in, 6 * last_in, kernel_size=1, norm_layer=norm, activation_layer=nn.Hardswish)

        self.low_index = _last_stride8_index(nominal)
        self.output_specs = {
            "low": OutputSpec(channels=configs[self.low_index].expanded_channels, stride=8),
            "high": OutputSpec(channels=6 * last_in, stride=output_stride),
        }

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.forward_from(self.stem(x), start=0)

    def forward_from(self, x: torch.Tensor, *, start: int) -> dict[str, torch.Tensor]:
        """The features from the input of block ``start`` on (``start`` <= the low tap's block)."""
        low, x = _forward_blocks(self.blocks[start:], self.low_index - start, x)
        return {"low": low, "high": self.last_conv(x)}

    def geometry(self) -> list[BlockGeometry]:
        return [_geometry(b) for b in self.blocks]


def _drop_atrous_residual(blocks: nn.ModuleList, nominal: list[int], schedule: list[tuple[int, int]], *, keep: bool) -> None:
    """torchvision's convention (``keep=False``): the block whose stride 2 became 1 has no residual."""
    if keep:
        return
    for block, s, (stride, _) in zip(blocks, nominal, schedule):
        if s > 1 and stride == 1:
            block.use_res_connect = False


def _geometry(block: nn.Module) -> BlockGeometry:
    depthwise = next(m for m in block.modules() if isinstance(m, nn.Conv2d) and m.groups > 1)
    return BlockGeometry(stride=depthwise.stride[0], rate=depthwise.dilation[0], residual=bool(block.use_res_connect))


class _V2Block(nn.Module):
    """MobileNetV2 inverted residual with dilation (torchvision's V2 block has none)."""

    def __init__(self, *, in_channels: int, out_channels: int, expansion: int, stride: int, dilation: int,
                 norm: Callable[..., nn.Module]) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.use_res_connect = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(Conv2dNormActivation(in_channels, hidden, kernel_size=1, norm_layer=norm, activation_layer=nn.ReLU6))
        layers += [
            Conv2dNormActivation(
                hidden, hidden, kernel_size=3, stride=stride, dilation=dilation, groups=hidden,
                norm_layer=norm, activation_layer=nn.ReLU6,
            ),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            norm(out_channels),
        ]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.use_res_connect else out


class MobileNetV2Backbone(nn.Module):
    """MobileNetV2 trunk up to its 320-channel layer (DeepLab drops the 1280 conv), OS 16 or 32."""

    def __init__(
        self,
        *,
        width_mult: float = 1.0,
        output_stride: int = 16,
        rf2: bool = True,
        first_atrous_rate: int = 1,
        first_atrous_residual: bool = True,
        bn_momentum: float = 0.003,
        bn_eps: float = 1e-3,
    ) -> None:
        super().__init__()
        if output_stride not in (16, 32):
            raise ValueError(f"output_stride must be 16 or 32, got {output_stride}")
        divider = 2 if rf2 else 1
        norm = partial(nn.BatchNorm2d, eps=bn_eps, momentum=bn_momentum)
        stem_ch = _make_divisible(32 * width_mult, 8)
        self.stem = Conv2dNormActivation(3, stem_ch, kernel_size=3, stride=2, norm_layer=norm, activation_layer=nn.ReLU6)
        last_stage = len(_V2) - 2
        # (expansion, out channels, nominal stride) per block.
        rows = [
            (t, _make_divisible(c * width_mult / (divider if stage >= last_stage else 1), 8), s if i == 0 else 1)
            for stage, (t, c, n, s) in enumerate(_V2) for i in range(n)
        ]
        nominal = [s for _, _, s in rows]
        schedule = atrous_schedule(nominal, output_stride=output_stride, first_rate=first_atrous_rate)
        blocks, in_ch = [], stem_ch
        for (t, out_ch, _), (stride, rate) in zip(rows, schedule):
            blocks.append(_V2Block(
                in_channels=in_ch, out_channels=out_ch, expansion=t, stride=stride, dilation=rate, norm=norm,
            ))
            in_ch = out_ch
        self.blocks = nn.ModuleList(blocks)
        _drop_atrous_residual(self.blocks, nominal, schedule, keep=first_atrous_residual)
        self.low_index = _last_stride8_index(nominal)
        low_block = self.blocks[self.low_index]
        self.output_specs = {
            "low": OutputSpec(channels=low_block.block[-2].in_channels, stride=8),
            "high": OutputSpec(channels=in_ch, stride=output_stride),
        }

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.forward_from(self.stem(x), start=0)

    def forward_from(self, x: torch.Tensor, *, start: int) -> dict[str, torch.Tensor]:
        """The features from the input of block ``start`` on (``start`` <= the low tap's block)."""
        low, high = _forward_blocks(self.blocks[start:], self.low_index - start, x)
        return {"low": low, "high": high}

    def geometry(self) -> list[BlockGeometry]:
        return [_geometry(b) for b in self.blocks]


_BACKBONES = {
    "mobilenet_v3_large": partial(MobileNetV3Backbone, variant="large"),
    "mobilenet_v3_small": partial(MobileNetV3Backbone, variant="small"),
    "mobilenet_v2": MobileNetV2Backbone,
}


def build_backbone(*, name: str, **kwargs) -> nn.Module:
    """A backbone by name; ``kwargs`` are the backbone constructors' keyword arguments."""
    if name not in _BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(_BACKBONES)}")
    return _BACKBONES[name](**kwargs)
