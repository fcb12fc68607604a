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
