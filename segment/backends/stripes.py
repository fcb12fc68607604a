"""The high-resolution blocks run in horizontal stripes: the same numbers, less memory traffic.

At 1024x2048 the first blocks after the stem expand 16-24 channels to 64-72 at
1/2 and 1/4 resolution: the expanded tensor (67 MB in bf16 for block 1) is
written by the 1x1 convolution and read back by the depthwise one, and the
engines run one layer over the whole image before the next. Cut into stripes
of rows, each stripe's expanded tensor stays in cache between the two, and
OpenVINO runs the graph stripe by stripe (measured, bf16, blocks 1-2 of
V3-Large at 1024x2048: 19.5 -> 13.8 ms on one thread, 11.8 -> 8.9 ms on two).

Exact, not approximate: each stripe takes every input row its outputs depend
on (the halo, from the convolutions' kernels, strides, dilations and
paddings), starts on a multiple of the chain's stride so its rows line up with
the whole image's, runs the unchanged blocks, and keeps only its own output
rows. Rows next to a stripe's cut edges are wrong (the convolutions pad there
with zeros) but they are never kept; at the image's edges the padding is the
real one. OpenVINO's outputs are bit-identical to the unstriped graph's.
"""

from __future__ import annotations

import math

import torch
from torch import nn

STRIPE_ROWS = 32  # output rows per stripe (1/4 resolution: 8 stripes at 1024x2048); measured best of 16/32/64
# Stripes only where the chain's largest activation (in bf16) outgrows a last-level cache:
# at 1024x2048 (block 1's expansion: 67 MB) OpenVINO mixed went from 87 to 74 ms a request
# (median of 10, 2 threads); at 512x1024 (17 MB) stripes gained nothing (23.2 vs 23.4 ms).
STRIPE_ABOVE_BYTES = 32 * 2**20


def conv_geometry(module: nn.Module) -> list[tuple[int, int, int, int]]:
    """(kernel, stride, dilation, padding) along the rows of each Conv2d in ``module``, in the order they run.

    Valid for chains whose convolutions run in registration order with only
    row-aligned (elementwise) joins: the inverted-residual blocks, not blocks
    with pooling (``stripe_count`` leaves those out).
    """
    return [_along(m, 0) for m in _convs([module])]


def _convs(modules: list[nn.Module]) -> list[nn.Conv2d]:
    return [m for module in modules for m in module.modules() if isinstance(m, nn.Conv2d)]


def _along(conv: nn.Conv2d, axis: int) -> tuple[int, int, int, int]:
    return conv.kernel_size[axis], conv.stride[axis], conv.dilation[axis], conv.padding[axis]


def input_rows(geometry: list[tuple[int, int, int, int]], lo: int, hi: int) -> tuple[int, int]:
    """The input rows [a, b) that output rows [lo, hi) of the chain depend on (a may be < 0: padding)."""
    for k, s, d, p in reversed(geometry):
        lo, hi = lo * s - p, (hi - 1) * s - p + d * (k - 1) + 1
    return lo, hi


def output_rows(geometry: list[tuple[int, int, int, int]], rows: int) -> int:
    for k, s, d, p in geometry:
        rows = _out(rows, k, s, d, p)
    return rows


def _out(n: int, k: int, s: int, d: int, p: int) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def largest_activation(layers: list[nn.Module], height: int, width: int, *, itemsize: int = 2) -> int:
    """Bytes of the largest convolution output of ``layers`` on a (height, width) input (bf16 by default)."""
    return _largest(_convs(layers), height, width, itemsize)


def _largest(convs: list[nn.Conv2d], height: int, width: int, itemsize: int = 2) -> int:
    largest = 0
    for m in convs:
        height, width = _out(height, *_along(m, 0)), _out(width, *_along(m, 1))
        largest = max(largest, m.out_channels * height * width * itemsize)
    return largest


def _has_pooling(module: nn.Module) -> bool:
    # Global pooling (squeeze-and-excitation) mixes all rows: a stripe cannot see them.
    return any(isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.MaxPool2d))
               for m in module.modules())


def stripe_count(blocks: nn.ModuleList, *, start: int, stop: int, stem_stride: int = 2, max_stride: int = 4) -> int:
    """How many blocks from ``start`` (before ``stop``) can run in stripes.

    Consecutive blocks without pooling whose output is at 1/``max_stride`` or
    finer: the high-resolution part, where the memory traffic is.
    """
    def stride_of(block: nn.Module) -> int:
        return math.prod(s for _, s, _, _ in conv_geometry(block))

    stride = stem_stride * math.prod(stride_of(b) for b in blocks[:start])
    count = 0
    for block in blocks[start:stop]:
        stride *= stride_of(block)
        if stride > max_stride or _has_pooling(block):
            break
        count += 1
    return count


def run_in_stripes(layers: list[nn.Module], x: torch.Tensor, *, stripe_rows: int = STRIPE_ROWS,
                   channels_last: bool = False, above_bytes: int = STRIPE_ABOVE_BYTES) -> torch.Tensor:
    """``layers`` applied in turn to ``x``, computed ``stripe_rows`` output rows at a time
    if their largest activation is over ``above_bytes`` (else all at once).

    ``x`` is NCHW, or NHWC with ``channels_last`` (then cut into rows before it is
    permuted to the layers' NCHW). Returns NCHW (N, C, H', W').
    """
    convs = _convs(layers)  # one walk of the modules per call (the torch backend calls this per request)
    geometry = [_along(m, 0) for m in convs]
    stride = math.prod(s for _, s, _, _ in geometry)
    row_dim = 1 if channels_last else 2
    height, width = x.shape[row_dim], x.shape[row_dim + 1]
    out_height = output_rows(geometry, height)
    if out_height <= stripe_rows or _largest(convs, height, width) <= above_bytes:
        return _run(layers, x, channels_last)
    outs = []
    for lo in range(0, out_height, stripe_rows):
        hi = min(lo + stripe_rows, out_height)
        a, b = input_rows(geometry, lo, hi)
        # Start on a multiple of the chain's stride: local row j of each layer is then global row j + a/stride.
        a = max(a, 0) // stride * stride
        y = _run(layers, x.narrow(row_dim, a, min(b, height) - a), channels_last)
        outs.append(y[:, :, lo - a // stride:hi - a // stride])
    return torch.cat(outs, 2)


def _run(layers: list[nn.Module], x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    if channels_last:
        x = x.permute(0, 3, 1, 2)
    for layer in layers:
        x = layer(x)
    return x
