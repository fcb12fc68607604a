"""The default model exported to ONNX runs in ONNX Runtime and matches torch."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from segment import create_model
from segment.export import export_onnx


@pytest.mark.parametrize("size", [(512, 1024), (72, 100)])
def test_onnx_roundtrip_matches_torch(tmp_path, size):
    model = create_model("default").eval()
    # Non-trivial BN statistics, so a wrong fold or layout would show.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = export_onnx(model, tmp_path / "model.onnx", size=size, opset=18)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17

    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        expected = model(x).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"image": x.numpy()})
    assert got.shape == expected.shape == (1, 19, *size)
    assert np.abs(got - expected).max() < 1e-3


def test_export_leaves_no_partial_file_on_failure(tmp_path):
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    with pytest.raises(Exception):
        export_onnx(Broken(), tmp_path / "m.onnx", size=(32, 32))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("size", [(200, 328), (72, 100)])
def test_openvino_fp32_matches_torch_with_clipped_pooling_windows(tmp_path, size):
    """The reference gate (hard sigmoid, biased conv) and ceil-mode pooling with clipped edge
    windows survive ONNX -> OpenVINO: at 200x328 the 13x21 map gets a clipped column window."""
    openvino = pytest.importorskip("openvino")
    from heads.lraspp import pool_grid
    from segment.export import onnx_to_openvino

    model = create_model("default", train_crop=320).eval()
    assert [len(axis) for axis in pool_grid((13, 21), model.head.window, model.head.stride)] == [1, 2]
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    xml = onnx_to_openvino(export_onnx(model, tmp_path / "model.onnx", size=size), tmp_path / "ov" / "model.xml")
    compiled = openvino.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        expected = model(x).numpy()
    got = compiled({0: x.numpy()})[0]
    assert np.abs(got - expected).max() < 1e-3
