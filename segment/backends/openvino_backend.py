"""OpenVINO CPU plugin, latency mode, one stream.

OpenVINO executes "fp32" models in bf16 on CPUs with bf16 instructions unless
``INFERENCE_PRECISION_HINT`` says f32, so the precision is always set
explicitly and read back from the compiled model: the label is the truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segment.backends.base import Backend, BackendError, BackendSpec, resolve_threads

_HINT = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # int8: the layers left unquantized run in f32
_LABEL = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}


def _precision_label(compiled, requested: str) -> str:
    real = str(compiled.get_property("INFERENCE_PRECISION_HINT")).lower()
    real = next((label for key, label in _LABEL.items() if key in real.replace("float32", "f32").replace("bfloat16", "bf16")), real)
    return "int8" if requested == "int8" else real


class OpenVinoBackend(Backend):
    name = "openvino"

    def __init__(self, *, model_path: Path, size: tuple[int, int], spec: BackendSpec) -> None:
        import openvino as ov

        if spec.precision not in _HINT:
            raise BackendError(f"openvino backend runs fp32, bf16 or int8, not {spec.precision!r}")
        self.size = tuple(size)
        self.threads = resolve_threads(spec.threads)
        core = ov.Core()
        if spec.precision == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
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
