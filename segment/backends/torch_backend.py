"""PyTorch eager (optionally channels_last, bf16 autocast — whole or "mixed" — and torch.compile)."""

from __future__ import annotations

import copy

import numpy as np
import torch

from segment.backends.base import Backend, BackendError, BackendSpec, cpu_has_bf16, resolve_threads
from segment.backends.graph import FP32_MODULES, InferenceGraph


def fold_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    """Fold each eval-mode BatchNorm into the convolution right before it (in place).

    Eager PyTorch runs BN as a separate pass over every activation (about a quarter
    of the network's time here); ONNX Runtime and OpenVINO fold it on load.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for parent in module.modules():
        names = list(parent._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = parent._modules[a], parent._modules[b]
            if isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d):
                parent._modules[a] = fuse_conv_bn_eval(conv, bn)
                parent._modules[b] = torch.nn.Identity()
    return module


class _Fp32(torch.nn.Module):
    """Runs the wrapped module in fp32 even inside a bf16 autocast region (precision "mixed")."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", enabled=False):
            return self.module(x.float())


def keep_fp32(graph: torch.nn.Module, names=FP32_MODULES) -> torch.nn.Module:
    """Wrap the named submodules (in place) so autocast leaves them in fp32."""
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = graph.get_submodule(parent_name)
        setattr(parent, child, _Fp32(getattr(parent, child)))
    return graph


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, *, graph: InferenceGraph, size: tuple[int, int], spec: BackendSpec) -> None:
        if spec.precision not in ("fp32", "bf16", "mixed"):
            raise BackendError(f"torch backend runs fp32, bf16 or mixed, not {spec.precision!r}; use onnxruntime or openvino for int8")
        if spec.precision in ("bf16", "mixed") and not cpu_has_bf16():
            raise BackendError("this CPU has no bf16 instructions (avx512_bf16/amx); use precision fp32")
        self.size = tuple(size)
        self.threads = resolve_threads(spec.threads)
        self.precision = spec.precision
        graph = fold_batchnorm(copy.deepcopy(graph).eval())
        if spec.precision == "mixed":
            graph = keep_fp32(graph)
        if spec.channels_last:
            graph = graph.to(memory_format=torch.channels_last)
        self.graph = torch.compile(graph) if spec.compile else graph
        self.compiled = spec.compile

    def run(self, image: np.ndarray) -> torch.Tensor:
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision != "fp32"):
            logits = self.graph(torch.from_numpy(image))
        return logits[0].float()
