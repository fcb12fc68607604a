"""Precision "mixed": bf16 except the input side (normalization, stem, first block), on each backend that has it."""

import importlib.util

import numpy as np
import onnx
import pytest
import torch

from segment.backends import BackendSpec, build_backend
from segment.backends.graph import FP32_MODULES, InferenceGraph, is_fp32_node
from segment.backends.torch_backend import cpu_has_bf16, keep_fp32
from segment.export import export_graph_onnx
from segment.predict import Predictor
from segment.quantize import calibration_images

SIZE = (64, 128)
needs_bf16 = pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no bf16 instructions")


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    return Predictor.from_preset("default", threads=1)


@pytest.fixture(scope="module")
def onnx_nodes(predictor, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "graph.onnx"
    graph = InferenceGraph(model=predictor.model, mean=predictor.mean_unit, std=predictor.std_unit)
    export_graph_onnx(graph, path, size=SIZE)
    return [n for n in onnx.load(str(path)).graph.node]


def test_fp32_side_is_the_normalization_stem_and_first_block(onnx_nodes):
    marked = {n.name for n in onnx_nodes if is_fp32_node(n.name)}
    convs = [n.name for n in onnx_nodes if n.op_type == "Conv"]
    fp32_convs = [c for c in convs if c in marked]
    # V3-Large: the stem conv, block 0's depthwise and projection; nothing else.
    assert len(fp32_convs) == 3, fp32_convs
    assert all(c.startswith(("/backbone/stem/", "/backbone/blocks.0/")) for c in fp32_convs)
    # The normalization (Cast, Sub, Div, Transpose) is on the fp32 side; the head is not.
    assert {n.op_type for n in onnx_nodes if n.name in marked and not n.name.startswith("/backbone/")} >= {"Sub", "Div"}
    assert not [n for n in marked if n.startswith(("/head/", "/backbone/blocks.1/", "/backbone/blocks.10/"))]


def test_keep_fp32_wraps_exactly_the_named_modules(predictor):
    graph = keep_fp32(InferenceGraph(model=predictor.model, mean=predictor.mean_unit, std=predictor.std_unit))
    wrapped = [name for name, m in graph.named_modules() if type(m).__name__ == "_Fp32"]
    assert wrapped == list(FP32_MODULES)


@needs_bf16
def test_torch_mixed_runs_input_side_in_fp32_and_the_rest_in_bf16(predictor):
    backend = build_backend(predictor.model, mean=predictor.mean_unit, std=predictor.std_unit, size=SIZE,
                            spec=BackendSpec("torch", "mixed", 1))
    dtypes = {}
    for name in ("backbone.stem", "backbone.blocks.0", "backbone.blocks.1", "backbone.last_conv"):
        backend.graph.get_submodule(name).register_forward_hook(
            lambda m, i, o, name=name: dtypes.__setitem__(name, o.dtype))
    logits = backend.run(calibration_images(SIZE, count=1)[0][None])
    assert backend.precision == "mixed" and logits.dtype == torch.float32
    assert dtypes == {"backbone.stem": torch.float32, "backbone.blocks.0": torch.float32,
                      "backbone.blocks.1": torch.bfloat16, "backbone.last_conv": torch.bfloat16}


@needs_bf16
@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="OpenVINO not installed")
def test_openvino_mixed_compiles_the_marked_convolutions_in_fp32(predictor, tmp_path):
    from segment.backends.openvino_backend import conv_precisions

    backend = build_backend(predictor.model, mean=predictor.mean_unit, std=predictor.std_unit, size=SIZE,
                            spec=BackendSpec("openvino", "mixed", 1), cache_dir=tmp_path)
    assert backend.precision == "mixed"
    # Read back from the compiled graph: which convolution really runs at which precision.
    precisions = conv_precisions(backend.compiled)
    fp32 = sorted(name for name, p in precisions.items() if p == "f32")
    assert fp32 and all(name.startswith(("/backbone/stem/", "/backbone/blocks.0/")) for name in fp32), fp32
    assert len(fp32) == 3
    assert sum(p == "bf16" for p in precisions.values()) == len(precisions) - 3
    # The mixed IR is cached beside the fp32 one, from the same weights file.
    assert list(tmp_path.rglob("graph-mixed.ir/model.xml")) and list(tmp_path.rglob("graph-fp32.ir/model.xml"))
    bf16 = build_backend(predictor.model, mean=predictor.mean_unit, std=predictor.std_unit, size=SIZE,
                         spec=BackendSpec("openvino", "bf16", 1), cache_dir=tmp_path)
    assert bf16.precision == "bf16" and set(conv_precisions(bf16.compiled).values()) == {"bf16"}


@needs_bf16
@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="OpenVINO not installed")
def test_mixed_logits_are_closer_to_fp32_than_bf16_on_the_input_side(predictor, tmp_path):
    # The fp32 part removes the rounding of the image itself: mixed logits sit nearer fp32 than bf16's.
    image = calibration_images(SIZE, count=1)[0][None]
    run = {p: np.asarray(build_backend(predictor.model, mean=predictor.mean_unit, std=predictor.std_unit, size=SIZE,
                                       spec=BackendSpec("openvino", p, 1), cache_dir=tmp_path).run(image))
           for p in ("fp32", "bf16", "mixed")}
    err = {p: float(np.abs(run[p] - run["fp32"]).mean()) for p in ("bf16", "mixed")}
    assert err["mixed"] < err["bf16"], err
