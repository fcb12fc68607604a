"""OpenVINO CPU plugin, latency mode, one stream.

OpenVINO executes "fp32" models in bf16 on CPUs with bf16 instructions unless
``INFERENCE_PRECISION_HINT`` says f32, so the precision is always set
explicitly, and the label is read back from the precision every convolution of
the compiled graph runs at: the label is the truth. "mixed" is the bf16 hint on
an IR whose input-side layers are marked to stay fp32 (``segment.export.openvino_mixed_ir``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segment.backends.base import Backend, BackendError, BackendSpec, resolve_threads

_HINT = {"fp32": "f32", "bf16": "bf16", "mixed": "bf16", "int8": "f32"}  # int8: the layers left unquantized run in f32
_CONVS = ("Convolution", "GroupConvolution")


def conv_precisions(compiled) -> dict[str, str]:
    """layer name -> the precision each convolution of the compiled graph really runs at ("f32", "bf16", ...)."""
    out = {}
    for op in compiled.get_runtime_model().get_ops():
        rt = op.get_rt_info()
        if "layerType" in rt and rt["layerType"].astype(str) in _CONVS:
            out[op.get_friendly_name()] = rt["runtimePrecision"].astype(str).lower()
    return out


def _precision_label(compiled, requested: str) -> str:
    """What ran, read from the compiled graph rather than from what was asked for."""
    if requested == "int8":
        return "int8"
    found = set(conv_precisions(compiled).values())
    floats = {p for p in found if p in ("f32", "bf16", "f16")}
    if floats == {"f32", "bf16"}:
        return "mixed"
    if len(floats) == 1:
        return {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}[floats.pop()]
    return "+".join(sorted(found)) or "unknown"


class OpenVinoBackend(Backend):
    name = "openvino"

    def __init__(self, *, model_path: Path, size: tuple[int, int], spec: BackendSpec) -> None:
        import openvino as ov

        if spec.precision not in _HINT:
            raise BackendError(f"openvino backend runs fp32, bf16, mixed or int8, not {spec.precision!r}")
        self.size = tuple(size)
        self.threads = resolve_threads(spec.threads)
        core = ov.Core()
        if spec.precision in ("bf16", "mixed") and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            raise BackendError("this CPU has no bf16 support in OpenVINO; use precision fp32")
        config = {
            "INFERENCE_PRECISION_HINT": _HINT[spec.precision],
            "INFERENCE_NUM_THREADS": self.threads,
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
        }
        self.compiled = core.compile_model(str(model_path), "CPU", config)
        self.precision = _precision_label(self.compiled, spec.precision)
        self.request = self.compiled.create_infer_request()

    def run(self, image: np.ndarray) -> np.ndarray:
        self.request.infer({0: image})
        return self.request.get_output_tensor(0).data[0].copy()
