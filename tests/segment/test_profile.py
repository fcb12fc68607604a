"""OpenVINO per-layer profiles: part and kind of each layer, sums, and the command on a tiny model."""

import pytest

from segment.profile import layer_kind, layer_part, summarize


def test_layers_are_grouped_by_network_part_and_kind():
    assert layer_part("/blocks.12/block/block.0/block.0.0/Conv/WithoutBiases") == "block 12"
    assert layer_part("/stem/stem.0/Conv/WithoutBiases") == "stem"
    assert layer_part("/head/scale/scale.0/Conv") == "head"
    assert layer_part("Convert_17985") == layer_part("/Div") == "other"
    assert layer_kind("GroupConvolution", "brgconv_avx512_dw_i8") == "Convolution (depthwise)"
    assert layer_kind("Convolution", "jit_avx512_dw_bf16") == "Convolution (depthwise)"
    assert layer_kind("Convolution", "brgconv_avx512_amx_1x1_bf16") == "Convolution"
    layers = [{"name": "/head/x", "type": "Convolution", "exec_type": "f32", "ms": 1.0},
              {"name": "/blocks.10/y", "type": "Convolution", "exec_type": "i8", "ms": 2.0},
              {"name": "/blocks.2/y", "type": "GroupConvolution", "exec_type": "dw_i8", "ms": 3.0},
              {"name": "/blocks.2/z", "type": "Add", "exec_type": "f32", "ms": 0.5},
              {"name": "/stem/s", "type": "Convolution", "exec_type": "f32", "ms": 0.25}]
    assert list(summarize(layers, "part").items()) == [("stem", 0.25), ("block 2", 3.5), ("block 10", 2.0),
                                                        ("head", 1.0)]
    assert list(summarize(layers, "kind")) == ["Convolution", "Convolution (depthwise)", "Add"]
    with pytest.raises(ValueError):
        summarize(layers, "layer")


def test_profile_command_compares_precisions_part_by_part(capsys, tmp_path):
    pytest.importorskip("openvino")
    from segment.cli import main

    assert main(["profile", "--model", "small", "--size", "64x128", "--precision", "fp32", "--precision", "int8",
                 "--runs", "1", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("part"))
    assert header.split() == ["part", "fp32", "int8"]
    rows = {" ".join(line.split()[:2]) if line.startswith("block") else line.split()[0]: line
            for line in out.splitlines() if line.strip()}
    assert {"stem", "block 0", "head", "total"} <= set(rows)
    total = [float(v) for v in rows["total"].split()[1:]]
    assert all(t > 0 for t in total)
    assert main(["profile", "--model", "small", "--size", "64x128", "--int8-float", "stems"]) == 2
    assert "--int8-float" in capsys.readouterr().err
