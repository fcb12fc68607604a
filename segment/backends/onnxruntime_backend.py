"""ONNX Runtime, CPU execution provider, all graph optimizations, fixed thread count."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segment.backends.base import Backend, BackendError, BackendSpec, resolve_threads


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, *, onnx_path: Path, size: tuple[int, int], spec: BackendSpec) -> None:
        import onnxruntime as ort

        if spec.precision not in ("fp32", "int8"):
            raise BackendError(f"onnxruntime backend runs fp32 or int8, not {spec.precision!r}")
        self.size = tuple(size)
        self.threads = resolve_threads(spec.threads)
        self.precision = spec.precision
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self.threads
        # Batch 1 of a chain of layers: parallelism lives inside each op, not across ops.
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def run(self, image: np.ndarray) -> np.ndarray:
        (logits,) = self.session.run(None, {self.input_name: image})
        return logits[0]
