"""The graph every backend runs: uint8 RGB image in, low-resolution logits out.

Two departures from ``Segmenter.forward``, both for speed and both exact:
- normalization (and the NHWC -> NCHW layout change) happens inside the graph,
  so ONNX Runtime / OpenVINO fuse it instead of numpy making three passes over
  a float copy of the image;
- the final bilinear resize to the input size is left out: the labels are
  computed from the 1/8-resolution logits by ``segment.postprocess.upsample_argmax``,
  which gives the argmax of that resize without writing its 19-channel tensor.
"""

from __future__ import annotations

import torch
from torch import nn

# Precision "mixed": bf16 everywhere except the input side, which stays fp32 —
# the normalization, the stem and the first block. Measured with the bundled
# model at 1024x2048 on 10 CamVid val photos (OpenVINO, argmax agreement with
# torch fp32): bf16 everywhere 98.93%; normalization + stem in fp32 99.68%;
# + the first block 99.82%; bf16 only from block 3 on 99.85%. The labels are
# sensitive to rounding of the image and the first high-resolution features, not
# to the deep layers where most of the network's weights are.
FP32_BLOCKS = 1  # blocks after the stem kept in fp32
FP32_MODULES = ("backbone.stem",) + tuple(f"backbone.blocks.{i}" for i in range(FP32_BLOCKS))


GRAPH_VERSION = 5  # part of the export cache key: bump when forward() changes what is exported


class InferenceGraph(nn.Module):
    def __init__(self, *, model: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.head = model.head
        # Checkpoints store mean/std on the 0..1 scale; the graph takes 0..255 pixels.
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image: (1, H, W, 3) uint8 RGB -> logits (1, classes, ~H/8, ~W/8) float32."""
        return self.rest(self.input_side(image))

    def input_side(self, image: torch.Tensor) -> torch.Tensor:
        """Normalization, stem and the first FP32_BLOCKS blocks: the fp32 part of precision "mixed"."""
        # Normalize in the image's own NHWC layout, then permute: OpenVINO's convolutions want
        # NHWC, so its permute becomes free, where permuting first cost two layout passes
        # (OpenVINO fp32, 1024x2048: 13 ms of input handling down to 7).
        x = ((image.float() - self.mean.view(1, 1, 1, -1)) / self.std.view(1, 1, 1, -1)).permute(0, 3, 1, 2)
        x = self.backbone.stem(x)
        for block in self.backbone.blocks[:FP32_BLOCKS]:
            x = block(x)
        return x

    def rest(self, x: torch.Tensor) -> torch.Tensor:
        """Everything after ``input_side``: the bf16 part of precision "mixed"."""
        features = self.backbone.forward_from(x, start=FP32_BLOCKS)
        return self.head(features["low"], features["high"])

    def parts(self) -> tuple[nn.Module, nn.Module]:
        """(input side, rest) as two modules, exported as two graphs for OpenVINO's "mixed".

        The tensor handed over is NCHW float32 in the exported graphs; the
        OpenVINO backend re-declares it NHWC bf16 (see ``OpenVinoBackend``).
        """
        return _Part(self, self.input_side), _Part(self, self.rest)


class _Part(nn.Module):
    """One method of an InferenceGraph as a module of its own, for export."""

    def __init__(self, graph: InferenceGraph, method) -> None:
        super().__init__()
        self.graph = graph
        self.method = method.__name__

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self.graph, self.method)(x)
