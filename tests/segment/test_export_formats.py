"""``segment export``: ONNX / OpenVINO / int8 files that load and run, and clear errors."""

import numpy as np
import pytest
import torch

from segment.checkpoint import make_checkpoint, save_checkpoint
from segment.cli import main
from segment.model import build_model
from segment.presets import get_preset
from segment.quantize import calibration_images


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    config = get_preset("small").config  # export cost grows with the model; the path is the same
    path = tmp_path_factory.mktemp("ckpt") / "small.pt"
    save_checkpoint(path, make_checkpoint(model=build_model(config).eval(), config=config,
                                          classes=[f"c{i}" for i in range(19)], palette=[[i, i, i] for i in range(19)],
                                          mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]))
    return path


def _run_onnx(path, size):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    image = calibration_images(size, count=1)[0][None]
    (logits,) = session.run(None, {session.get_inputs()[0].name: image})
    return logits


def test_export_onnx_app_graph(tmp_path, checkpoint, monkeypatch, capsys):
    monkeypatch.setenv("MNV3_LRASPP_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--size", "half", "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    logits = _run_onnx(out, (512, 1024))
    assert logits.shape == (1, 19, 64, 128)


def test_export_openvino(tmp_path, checkpoint, monkeypatch):
    openvino = pytest.importorskip("openvino")
    monkeypatch.setenv("MNV3_LRASPP_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "ov" / "model.xml"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "openvino", "--size", "half", "--out", str(out)]) == 0
    assert out.exists() and out.with_suffix(".bin").exists()
    compiled = openvino.Core().compile_model(str(out), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    image = calibration_images((512, 1024), count=1)[0][None]
    result = compiled({0: image})[0]
    assert result.shape == (1, 19, 64, 128)


def test_export_int8_with_calibration_folder(tmp_path, checkpoint, monkeypatch):
    import cv2
    import onnx

    monkeypatch.setenv("MNV3_LRASPP_CACHE", str(tmp_path / "cache"))
    calib = tmp_path / "calib"
    calib.mkdir()
    for i, img in enumerate(calibration_images((256, 512), count=2)):
        cv2.imwrite(str(calib / f"{i}.png"), img[:, :, ::-1])
    out = tmp_path / "int8.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--size", "half", "--int8", "--calib-data", str(calib),
                 "--calib-count", "2", "--out", str(out)]) == 0
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert np.isfinite(_run_onnx(out, (512, 1024))).all()


def test_export_errors_are_one_line(tmp_path, checkpoint, capsys):
    assert main(["export", "--checkpoint", str(checkpoint), "--int8", "--calib-data", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "Traceback" not in err
    assert main(["export", "--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.onnx")]) == 2
    capsys.readouterr()
    # What NNCF keeps in float means nothing to ONNX Runtime's quantizer or to fp32.
    assert main(["export", "--checkpoint", str(checkpoint), "--int8", "--int8-float", "stem",
                 "--out", str(tmp_path / "x.onnx")]) == 2
    assert "--int8 --format openvino" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(checkpoint), "--int8", "--format", "openvino", "--int8-float", "gates",
                 "--out", str(tmp_path / "x.xml")]) == 2
    assert "unknown layer groups" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
