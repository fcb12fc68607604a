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
        x = (image.permute(0, 3, 1, 2).float() - self.mean) / self.std
        features = self.backbone(x)
        return self.head(features["low"], features["high"])
