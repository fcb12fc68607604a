"""Striped high-resolution blocks: the same numbers as running them whole."""

import importlib.util

import numpy as np
import pytest
import torch
from torch import nn

from segment.backends.graph import FP32_BLOCKS, InferenceGraph
from segment.backends.stripes import (
    STRIPE_ABOVE_BYTES, input_rows, largest_activation, output_rows, run_in_stripes, stripe_count,
)
from segment.predict import Predictor


def test_input_rows_follow_kernel_stride_dilation_and_padding():
    # 3x3 stride 2 pad 1: outputs 0..3 read rows -1 (padding) .. 7.
    assert input_rows([(3, 2, 1, 1)], 0, 4) == (-1, 8)
    # then a dilated 3x3 (dilation 2, pad 2) after it: outputs 4..5 need its rows 2..7, i.e. input rows 3..15.
    assert input_rows([(3, 2, 1, 1), (3, 1, 2, 2)], 4, 6) == (3, 16)
    assert input_rows([(1, 1, 1, 0)], 5, 9) == (5, 9)
    assert output_rows([(3, 2, 1, 1), (3, 1, 1, 1)], 101) == 51


# Blocks that run in stripes after the input side: V3-Large and V2 blocks 1-2 (1/2 -> 1/4);
# V3-Small none (its block 1 already goes to 1/8).
STRIPED = {"default": 2, "small": 0, "mnv2-rf2-lraspp-f128": 2}


@pytest.fixture(scope="module", params=list(STRIPED))
def named_model(request):
    torch.manual_seed(0)
    return request.param, Predictor.from_preset(request.param, threads=1, calibrate_bn=False).model.eval()


@pytest.fixture(scope="module")
def model(named_model):
    return named_model[1]


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("hw", [(67, 93), (64, 128)])
def test_stripes_equal_the_whole_chain(model, channels_last, hw):
    # Every block up to the low tap, so strided, dilated, residual and SE blocks are all covered.
    layers = list(model.backbone.blocks[:model.backbone.low_index])
    x = torch.randn(1, layers[0].block[0][0].in_channels, *hw)
    arg = x.permute(0, 2, 3, 1).contiguous() if channels_last else x
    with torch.no_grad():
        # The whole chain in the same memory format (kernels, and so rounding, differ between formats).
        whole = arg.permute(0, 3, 1, 2) if channels_last else x
        for layer in layers:
            whole = layer(whole)
        for rows in (1, 3, 4):
            striped = run_in_stripes(layers[:_no_pooling(layers)], arg, stripe_rows=rows, channels_last=channels_last,
                                     above_bytes=0)
            for layer in layers[_no_pooling(layers):]:
                striped = layer(striped)
            # Equal up to float rounding (torch picks kernels by tensor size); a missing halo row is O(values).
            torch.testing.assert_close(striped, whole, rtol=1e-5, atol=1e-5 * float(whole.abs().max()))


def _no_pooling(layers):
    # The stripes may not include global pooling (SE); stop before the first block that has it.
    for i, layer in enumerate(layers):
        if any(isinstance(m, nn.AdaptiveAvgPool2d) for m in layer.modules()):
            return i
    return len(layers)


def test_stripe_count_stops_at_pooling_and_at_quarter_resolution(named_model):
    name, model = named_model
    blocks, low = model.backbone.blocks, model.backbone.low_index
    assert stripe_count(blocks, start=FP32_BLOCKS, stop=low) == STRIPED[name]
    assert stripe_count(blocks, start=FP32_BLOCKS, stop=low, max_stride=64) <= low - FP32_BLOCKS


def test_small_images_run_whole():
    model = Predictor.from_preset("default", threads=1, calibrate_bn=False).model.eval()
    layers = list(model.backbone.blocks[1:3])
    assert largest_activation(layers, 512, 1024) == 64 * 512 * 1024 * 2  # block 1's expansion at 1024x2048, bf16
    assert largest_activation(layers, 256, 512) <= STRIPE_ABOVE_BYTES  # 512x1024: fits a cache, no stripes


def test_full_size_graph_is_striped_and_exact():
    torch.manual_seed(0)
    p = Predictor.from_preset("default", threads=2, calibrate_bn=False)
    striped = InferenceGraph(model=p.model, mean=p.mean_unit, std=p.std_unit).eval()
    plain = InferenceGraph(model=p.model, mean=p.mean_unit, std=p.std_unit, stripe_rows=None).eval()
    assert striped.striped_blocks == 2 and plain.striped_blocks == 0
    image = torch.randint(0, 256, (1, 1024, 2048, 3), dtype=torch.uint8)
    calls = []
    handle = p.model.backbone.blocks[1].register_forward_hook(lambda m, i, o: calls.append(o.shape[2]))
    with torch.no_grad():
        a, b = striped(image), plain(image)
    handle.remove()
    assert torch.equal(a, b)
    # Block 1 ran 8 times on 32 rows each plus a small halo, then once on all 256 rows (the plain graph).
    assert len(calls) == 9 and all(32 < rows <= 36 for rows in calls[:8]) and calls[8] == 256
    first, rest = striped.parts()
    with torch.no_grad():
        assert torch.equal(rest(first(image)), a)


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="OpenVINO not installed")
def test_openvino_runs_the_striped_graph_at_full_size(tmp_path):
    from segment.backends import BackendSpec, build_backend

    torch.manual_seed(0)
    p = Predictor.from_preset("default", threads=2)
    image = np.random.default_rng(0).integers(0, 256, (1, 1024, 2048, 3), dtype=np.uint8)
    backend = build_backend(p.model, mean=p.mean_unit, std=p.std_unit, size=(1024, 2048),
                            spec=BackendSpec("openvino", "fp32", 2), cache_dir=tmp_path)
    xml = next(tmp_path.rglob("graph-fp32-striped.ir/model.xml")).read_text()
    assert xml.count('type="Slice"') + xml.count('type="StridedSlice"') >= 16  # 8 stripes in, 8 crops out
    ref = InferenceGraph(model=p.model, mean=p.mean_unit, std=p.std_unit, stripe_rows=None).eval()
    with torch.no_grad():
        expected = ref(torch.from_numpy(image))[0].numpy()
    got = np.asarray(backend.run(image))
    assert np.abs(got - expected).max() < 1e-3 * max(1.0, np.abs(expected).max())
