"""What a backend is: a compiled graph for one input size that maps an image to logits."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from segment.errors import UserError

BACKENDS = ("torch", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16", "mixed", "int8")
# mixed: bf16 except the input side (normalization, stem, first block) in fp32; see graph.FP32_MODULES.


class BackendError(UserError):
    """A backend or precision this machine or installation cannot run."""


@dataclass
class BackendSpec:
    backend: str  # "torch" | "onnxruntime" | "openvino"
    precision: str = "fp32"  # requested: "fp32" | "bf16" | "mixed" | "int8"
    threads: int | None = None  # None: all cores torch sees
    compile: bool = False  # torch only: torch.compile the graph
    channels_last: bool = True  # torch only: NHWC activations (oneDNN's fast path)
    perf_count: bool = False  # openvino only: keep per-layer timings (segment.profile); costs a little speed


class Backend:
    """One input size, one backend, one precision. ``run`` is the model alone."""

    name: str
    precision: str  # the precision really used (e.g. OpenVINO's bf16 when asked for its default)
    size: tuple[int, int]
    threads: int

    def run(self, image: np.ndarray) -> np.ndarray | torch.Tensor:
        """image (1, H, W, 3) uint8 RGB at ``size`` -> logits (classes, h, w) float32."""
        raise NotImplementedError


@functools.lru_cache(maxsize=None)
def cpu_kind() -> str:
    """This CPU's bf16 and int8 hardware (``kind_of_cpu``), read from /proc/cpuinfo."""
    try:
        flags = set(open("/proc/cpuinfo").read().split())
    except OSError:
        return "no_bf16"
    return kind_of_cpu(flags)


def kind_of_cpu(flags: set[str]) -> str:
    """"amx_bf16", "avx512_bf16" (both with VNNI), "vnni_no_bf16" (int8 dot products, no bf16:
    e.g. Ice Lake) or "no_bf16" (e.g. Zen 3, Skylake), from the CPU's flags.

    Guard records apply per kind: bf16 rounding differs between the bf16 kinds, and without
    VNNI oneDNN's int8 convolutions add u8 x s8 pairs in saturating 16 bits, so int8 labels
    can differ from a VNNI CPU's."""
    if "amx_bf16" in flags:
        return "amx_bf16"
    if "avx512_bf16" in flags:
        return "avx512_bf16"
    return "vnni_no_bf16" if flags & {"avx512_vnni", "avx_vnni"} else "no_bf16"


def cpu_has_bf16() -> bool:
    return cpu_kind() in ("amx_bf16", "avx512_bf16")


def resolve_threads(threads: int | None) -> int:
    import os

    return int(threads) if threads else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
