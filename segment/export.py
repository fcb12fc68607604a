"""Export to ONNX (and, through it, OpenVINO)."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch

from segment.complexity import FULL, HALF

SIZES = {"half": HALF, "full": FULL}


def export_onnx(model: torch.nn.Module, path: str | os.PathLike, *, size: tuple[int, int], opset: int = 18) -> Path:
    """Write ``model`` as ONNX for a fixed input size (batch 1, NCHW float32, normalized).

    The size is fixed on purpose: LR-ASPP's pooling window depends on the feature
    map's size, so each input size is its own fixed AvgPool graph.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    example = torch.zeros(1, 3, *size)
    # Write beside the target, then rename: a failed export leaves no partial model.
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        tmp_path = Path(tmp) / path.name
        torch.onnx.export(
            model, (example,), str(tmp_path), input_names=["image"], output_names=["logits"],
            opset_version=opset, dynamo=False,
        )
        os.replace(tmp_path, path)
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", help="checkpoint to export (default: the bundled demo model)")
    parser.add_argument("--preset", help="export a randomly initialised preset instead of a checkpoint")
    parser.add_argument("--format", choices=["onnx", "openvino"], default="onnx")
    parser.add_argument("--size", choices=list(SIZES), default="half")
    parser.add_argument("--out", required=True, help="output file (.onnx) or folder (OpenVINO)")


def run(args: argparse.Namespace) -> int:
    from segment.checkpoint import load_checkpoint, model_from_checkpoint
    from segment.presets import get_preset
    from segment.model import build_model

    if args.preset:
        model = build_model(get_preset(args.preset).config)
    else:
        from segment.bundled import default_checkpoint

        model = model_from_checkpoint(load_checkpoint(args.checkpoint or default_checkpoint()))
    if args.format == "onnx":
        out = export_onnx(model, args.out, size=SIZES[args.size])
    else:
        raise NotImplementedError("OpenVINO export")
    print(f"wrote {out}")
    return 0
