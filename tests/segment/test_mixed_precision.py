"""Precision "mixed": bf16 except the input side (normalization, stem, first block), on each backend that has it."""

import importlib.util

import numpy as np
import pytest
import torch

from segment.backends import BackendSpec, build_backend
from segment.backends.graph import FP32_MODULES, InferenceGraph
from segment.backends.base import cpu_has_bf16
from segment.backends.torch_backend import keep_fp32
from segment.predict import Predictor
from segment.quantize import calibration_images

SIZE = (64, 128)
needs_bf16 = pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no bf16 instructions")


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    return Predictor.from_preset("default", threads=1)


def test_the_two_parts_compose_to_the_whole_graph(predictor):
    graph = InferenceGraph(model=predictor.model, mean=predictor.mean_unit, std=predictor.std_unit).eval()
    first, rest = graph.parts()
    image = torch.from_numpy(calibration_images(SIZE, count=1)[0][None])
    with torch.no_grad():
        handover = first(image)
        assert torch.equal(rest(handover), graph(image))
    # The handover is block 0's output, NHWC: stem (stride 2) then one block, 16 channels for V3-Large.
    assert handover.shape == (1, SIZE[0] // 2, SIZE[1] // 2, 16)
    assert FP32_MODULES == ("backbone.stem", "backbone.blocks.0")


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
def test_openvino_mixed_runs_the_input_side_in_fp32_and_the_rest_in_bf16(predictor, tmp_path):
    from segment.backends.openvino_backend import conv_precisions

    backend = build_backend(predictor.model, mean=predictor.mean_unit, std=predictor.std_unit, size=SIZE,
                            spec=BackendSpec("openvino", "mixed", 1), cache_dir=tmp_path)
    assert backend.precision == "mixed"
    # Read back from the two compiled graphs: which convolution really runs at which precision.
    first, rest = conv_precisions(backend.first), conv_precisions(backend.compiled)
    assert set(first.values()) == {"f32"} and len(first) == 3  # stem, block 0's depthwise and projection
    assert all(name.startswith(("/stem/", "/blocks.0/")) for name in first), sorted(first)
    assert set(rest.values()) == {"bf16"} and len(rest) == 63
    # Both parts are cached beside the fp32 graph, from the same weights.
    assert list(tmp_path.rglob("graph-mixed-input.ir/model.xml")) and list(tmp_path.rglob("graph-mixed-rest.ir/model.xml"))
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
