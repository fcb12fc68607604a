"""Export to ONNX (and, through it, OpenVINO): the library. The ``segment export`` command is
``segment.commands.export``; the cached per-size exports are ``segment.backends.export_artifact``.

Imports no other project module besides ``segment.atomic``, so ``segment.backends`` imports it at load time.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from segment.atomic import write_path_atomic


def export_onnx(model: torch.nn.Module, path: str | os.PathLike, *, size: tuple[int, int], opset: int = 18) -> Path:
    """Write ``model`` as ONNX for a fixed input size (batch 1, NCHW float32, normalized).

    The size is fixed on purpose: LR-ASPP's pooling window depends on the feature
    map's size, so each input size is its own fixed AvgPool graph.
    """
    model = model.eval()
    example = torch.zeros(1, 3, *size)

    def write(tmp: Path) -> None:
        torch.onnx.export(model, (example,), str(tmp), input_names=["image"], output_names=["logits"],
                          opset_version=opset, dynamo=False)

    # Written beside the target, then renamed: a failed export leaves no partial model.
    return write_path_atomic(path, write)


def export_graph_onnx(graph: torch.nn.Module, path: str | os.PathLike, *, size: tuple[int, int], opset: int = 18,
                      example: torch.Tensor | None = None, names: tuple[str, str] = ("image", "logits")) -> Path:
    """Write an :class:`segment.backends.graph.InferenceGraph` (uint8 NHWC image -> 1/8 logits) as ONNX.

    ``example``/``names``: another input (e.g. a part of the graph: ``InferenceGraph.parts``).
    """
    if example is None:
        example = torch.zeros(1, *size, 3, dtype=torch.uint8)

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shapes are fixed per export on purpose
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is the one that handles our AvgPool sizes
            torch.onnx.export(graph.eval(), (example,), str(tmp), input_names=[names[0]], output_names=[names[1]],
                              opset_version=opset, dynamo=False)

    return write_path_atomic(path, write)


def onnx_to_openvino(onnx_path: str | os.PathLike, xml_path: str | os.PathLike) -> Path:
    """Convert ONNX to OpenVINO IR (xml + bin), weights kept in fp32 (no silent fp16 compression)."""
    import openvino as ov

    xml_path = Path(xml_path)
    ov_model = ov.convert_model(str(onnx_path))

    def write(tmp_dir: Path) -> None:
        tmp_dir.mkdir()
        ov.save_model(ov_model, str(tmp_dir / "model.xml"), compress_to_fp16=False)

    # IR is two files; they are written into a folder that is renamed into place as one.
    folder = write_path_atomic(xml_path.parent / (xml_path.stem + ".ir"), write)
    return folder / "model.xml"
