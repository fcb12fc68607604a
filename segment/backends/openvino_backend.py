"""OpenVINO CPU plugin, latency mode, one stream.

OpenVINO executes "fp32" models in bf16 on CPUs with bf16 instructions unless
``INFERENCE_PRECISION_HINT`` says f32, so the precision is always set
explicitly, and the label is read back from the precision every convolution of
the compiled graph runs at: the label is the truth. "mixed" is two compiled graphs: the input side
(``InferenceGraph.input_side``) at f32 and the rest at bf16. "int8" runs the
layers NNCF left in float at bf16 where the CPU has bf16, else at f32.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from segment.backends.base import Backend, BackendError, BackendSpec, resolve_threads

# int8: the precision of the layers NNCF keeps in float, f32 on CPUs without bf16 (_compile_hint).
_HINT = {"fp32": "f32", "bf16": "bf16", "mixed": "bf16", "int8": "f32"}
_CONVS = ("Convolution", "GroupConvolution")
_LABEL = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}


def conv_precisions(compiled) -> dict[str, str]:
    """layer name -> the precision each convolution of the compiled graph really runs at ("f32", "bf16", ...)."""
    out = {}
    for op in compiled.get_runtime_model().get_ops():
        rt = op.get_rt_info()
        if "layerType" in rt and rt["layerType"].astype(str) in _CONVS:
            out[op.get_friendly_name()] = rt["runtimePrecision"].astype(str).lower()
    return out


def _precision_label(compiled, requested: str) -> str:
    """What ran, read from the compiled graph rather than from what was asked for.

    int8: "int8" with the float layers at f32, "int8+bf16" with them at bf16."""
    found = set(conv_precisions(compiled).values())
    if requested == "int8":
        floats = found - {"u8", "i8"}
        return "int8+bf16" if floats == {"bf16"} else "int8"
    if len(found) == 1 and next(iter(found)) in _LABEL:
        return _LABEL[found.pop()]
    return "+".join(sorted(found)) or "unknown"  # several precisions in one graph: say so, do not round it off


def _has_bf16(core) -> bool:
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _compile_hint(core, precision: str) -> str:
    """``INFERENCE_PRECISION_HINT`` for a single-graph precision; int8's float layers run at bf16
    where the CPU has it.

    On an AMD EPYC Zen 5 (avx512_bf16, VNNI, no AMX) the large model's int8 took 96.9 ms
    at 1024x2048 on 2 threads with those layers in f32, no faster than bf16 (109.0) or mixed
    (118.2); with them in bf16 it took 84.5 ms, and its mIoU drop on the guard's labelled set
    stayed under 0.5 points (docs/inference.md, "int8 with NNCF").
    """
    return "bf16" if precision == "int8" and _has_bf16(core) else _HINT[precision]


def _with_io(model, *, handover_in: bool = False, handover_out: bool = False):
    """``model`` with its logits output declared NHWC, and the tensor between the two graphs of "mixed" bf16.

    Logits out NHWC: the layout OpenVINO computes them in; an NCHW output costs a
    reorder at the end of the graph (1.7 ms of ~60 at 1024x2048), and
    ``upsample_argmax`` wants the classes of a pixel side by side anyway.
    The handover (``handover_out`` of the input side, ``handover_in`` of the
    rest) is NHWC in the exported graphs already (``InferenceGraph.input_side``),
    which leaves the input side without a layout pass (~10 ms at 1024x2048); bf16
    is what the bf16 side rounds it to on arrival anyway, so the rounding moves,
    not changes, and half the bytes cross over.
    """
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(model)
    if handover_in:
        ppp.input().tensor().set_element_type(ov.Type.bf16)
    if handover_out:
        ppp.output().tensor().set_element_type(ov.Type.bf16)
    else:
        ppp.output().model().set_layout(ov.Layout("NCHW"))
        ppp.output().tensor().set_layout(ov.Layout("NHWC"))
    return ppp.build()


@functools.lru_cache(maxsize=None)
def _core():
    """One OpenVINO Core for the whole process, never released.

    Loading the CPU plugin (once per Core) installs an alternate signal stack on
    the calling thread, and releasing that Core frees the memory without
    uninstalling it (OpenVINO 2026.4). The next Python signal handled on that
    thread (they run SA_ONSTACK), e.g. a SIGCHLD, is then written into freed
    memory: a Core per backend, built and dropped by ``auto`` and the tests,
    ended the test suite with a SIGSEGV during a later SIGCHLD. One Core that
    lives as long as the process keeps that stack valid.
    """
    import openvino as ov

    return ov.Core()


class OpenVinoBackend(Backend):
    name = "openvino"

    def __init__(self, *, model_path: Path, size: tuple[int, int], spec: BackendSpec,
                 first_path: Path | None = None) -> None:
        """``first_path`` (precision "mixed" only): the input side's IR, compiled fp32; ``model_path`` the rest."""
        if spec.precision not in _HINT:
            raise BackendError(f"openvino backend runs fp32, bf16, mixed or int8, not {spec.precision!r}")
        if (spec.precision == "mixed") != (first_path is not None):
            raise BackendError("openvino precision 'mixed' runs two graphs: the input side and the rest")
        self.size = tuple(size)
        self.threads = resolve_threads(spec.threads)
        core = _core()
        if spec.precision in ("bf16", "mixed") and not _has_bf16(core):
            raise BackendError("this CPU has no bf16 support in OpenVINO; use precision fp32")

        def compile_at(model, hint: str):
            return core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint,
                                                     "INFERENCE_NUM_THREADS": self.threads,
                                                     "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
                                                     "PERF_COUNT": spec.perf_count})

        self.first = self.first_request = None
        if first_path is None:
            self.compiled = compile_at(_with_io(core.read_model(str(model_path))), _compile_hint(core, spec.precision))
            self.request = self.compiled.create_infer_request()
            self.precision = _precision_label(self.compiled, spec.precision)
        else:
            self.compiled = compile_at(_with_io(core.read_model(str(model_path)), handover_in=True), "bf16")
            self.request = self.compiled.create_infer_request()
            self.first = compile_at(_with_io(core.read_model(str(first_path)), handover_out=True), "f32")
            self.first_request = self.first.create_infer_request()
            parts = (_precision_label(self.first, "fp32"), _precision_label(self.compiled, "bf16"))
            self.precision = "mixed" if parts == ("fp32", "bf16") else "+".join(parts)

    def run(self, image: np.ndarray) -> np.ndarray:
        # Shared, not copied: by default ``infer`` copies the inputs in and every output out to
        # numpy, which for "mixed" includes the 17 MB handover at 1024x2048 (2.7 ms a request).
        share = {"share_inputs": True, "share_outputs": True}
        if self.first_request is None:
            self.request.infer({0: image}, **share)
        else:
            # The handover stays an OpenVINO tensor: no copy through numpy.
            self.first_request.infer({0: image}, **share)
            self.request.infer({0: self.first_request.get_output_tensor(0)}, **share)
        return self.request.get_output_tensor(0).data[0].copy().transpose(2, 0, 1)  # (classes, h, w), NHWC in memory
