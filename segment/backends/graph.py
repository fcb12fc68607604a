"""The graph every backend runs: uint8 RGB image in, low-resolution logits out.

Three departures from ``Segmenter.forward``, all for speed and all exact:
- normalization (and the NHWC -> NCHW layout change) happens inside the graph,
  so ONNX Runtime / OpenVINO fuse it instead of numpy making three passes over
  a float copy of the image;
- the high-resolution blocks after the input side run in horizontal stripes
  (``segment.backends.stripes``), in the exported graphs;
- the final bilinear resize to the input size is left out: the labels are
  computed from the 1/8-resolution logits by ``segment.postprocess.upsample_argmax``,
  which gives the argmax of that resize without writing its 19-channel tensor.
"""

from __future__ import annotations

import torch
from torch import nn

from segment.backends.stripes import STRIPE_ROWS, run_in_stripes, stripe_count

# Precision "mixed": bf16 everywhere except the input side, which stays fp32 —
# the normalization, the stem and the first block. Measured with the bundled
# model at 1024x2048 on 10 CamVid val photos (OpenVINO, argmax agreement with
# torch fp32): bf16 everywhere 98.93%; normalization + stem in fp32 99.68%;
# + the first block 99.82%; bf16 only from block 3 on 99.85%. The labels are
# sensitive to rounding of the image and the first high-resolution features, not
# to the deep layers where most of the network's weights are.
FP32_BLOCKS = 1  # blocks after the stem kept in fp32
FP32_MODULES = ("backbone.stem",) + tuple(f"backbone.blocks.{i}" for i in range(FP32_BLOCKS))


GRAPH_VERSION = 6  # part of the export cache key: bump when forward() changes what is exported


class InferenceGraph(nn.Module):
    def __init__(self, *, model: nn.Module, mean: list[float], std: list[float],
                 stripe_rows: int | None = STRIPE_ROWS) -> None:
        """``stripe_rows``: output rows per stripe of the high-resolution blocks (None: no stripes)."""
        super().__init__()
        self.backbone = model.backbone
        self.head = model.head
        self.stripe_rows = stripe_rows
        # Stem stride 2; V3-Large: blocks 1-2 (1/2 -> 1/4); they end before the low tap at 1/8.
        self.striped_blocks = stripe_count(self.backbone.blocks, start=FP32_BLOCKS, stop=self.backbone.low_index) \
            if stripe_rows else 0
        # Checkpoints store mean/std on the 0..1 scale; the graph takes 0..255 pixels.
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image: (1, H, W, 3) uint8 RGB -> logits (1, classes, ~H/8, ~W/8) float32."""
        return self._after_input(self._input(image), channels_last=False)

    def input_side(self, image: torch.Tensor) -> torch.Tensor:
        """Normalization, stem and the first FP32_BLOCKS blocks: the fp32 part of precision "mixed".

        Returns NHWC (1, h, w, C), as the engines hold it: the handover between the two
        graphs of "mixed" is then a plain tensor whose rows the striped blocks slice.
        """
        return self._input(image).permute(0, 2, 3, 1)

    def rest(self, x: torch.Tensor) -> torch.Tensor:
        """Everything after ``input_side`` (NHWC features in): the bf16 part of precision "mixed"."""
        return self._after_input(x, channels_last=True)

    def _input(self, image: torch.Tensor) -> torch.Tensor:
        n, h, w, c = image.shape
        # Normalize in the image's own NHWC layout, then permute: OpenVINO's convolutions want
        # NHWC, so its permute becomes free, where permuting first cost two layout passes
        # (OpenVINO fp32, 1024x2048: 13 ms of input handling down to 7). Rows as one (w*3)-long
        # axis with the per-channel constants tiled along it: broadcasting along an innermost
        # axis of 3 ran OpenVINO's kernel ~3x slower (8 ms -> 2.8 ms at 1024x2048, one thread).
        mean, std = self.mean.view(-1).repeat(w), self.std.view(-1).repeat(w)
        x = ((image.reshape(n, h, w * c).float() - mean) / std).reshape(n, h, w, c).permute(0, 3, 1, 2)
        x = self.backbone.stem(x)
        for block in self.backbone.blocks[:FP32_BLOCKS]:
            x = block(x)
        return x

    def _after_input(self, x: torch.Tensor, *, channels_last: bool) -> torch.Tensor:
        """``x``: the input side's features, NHWC (a graph input: "mixed") or NCHW (inside one graph).

        The stripes slice rows in the layout the tensor arrives in: in OpenVINO, permuting a
        convolution's output to NHWC was a 22 ms reference transpose, and permuting a graph
        input to NCHW before slicing it a 5.8 ms one.
        """
        start = FP32_BLOCKS + self.striped_blocks
        if self.striped_blocks:
            x = run_in_stripes(list(self.backbone.blocks[FP32_BLOCKS:start]), x, stripe_rows=self.stripe_rows,
                               channels_last=channels_last)
        elif channels_last:
            x = x.permute(0, 3, 1, 2)
        features = self.backbone.forward_from(x, start=start)
        return self.head(features["low"], features["high"])

    def parts(self) -> tuple[nn.Module, nn.Module]:
        """(input side, rest) as two modules, exported as two graphs for OpenVINO's "mixed".

        The tensor handed over is NHWC float32 in the exported graphs; the
        OpenVINO backend re-declares it bf16 (see ``OpenVinoBackend``).
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
