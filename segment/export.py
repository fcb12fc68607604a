"""Export to ONNX (and, through it, OpenVINO)."""

from __future__ import annotations

import argparse
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", help="checkpoint to export (default: the bundled demo model)")
    parser.add_argument("--preset", help="export a randomly initialised preset instead of a checkpoint")
    parser.add_argument("--format", choices=["onnx", "openvino"], default="onnx")
    parser.add_argument("--size", default="half",
                        help="input shape of the graph: half (512x1024), full (1024x2048) or HxW, e.g. 608x832 for "
                             "the 4:3 bucket of half that 'segment predict' runs a 4:3 photo at (default: half)")
    parser.add_argument("--out", help="output file (.onnx) or OpenVINO .xml (default: the model cache, printed)")
    parser.add_argument("--graph", choices=["logits", "app"], default="app",
                        help="app: uint8 NHWC image in, 1/8-resolution logits out (what 'predict' runs); "
                             "logits: normalized NCHW float in, logits at input size out (the plain model)")
    parser.add_argument("--int8", action="store_true", help="static int8 quantization (QDQ), calibrated on --calib-data")
    parser.add_argument("--calib-data", help="folder of dataset images for int8 calibration (default: synthetic scenes)")
    parser.add_argument("--calib-count", type=int, default=16, help="calibration images (default 16)")


def run(args: argparse.Namespace) -> int:
    from segment.checkpoint import load_checkpoint, model_from_checkpoint
    from segment.errors import UserError
    from segment.presets import get_preset
    from segment.model import build_model

    from segment.normalization import IMAGENET_MEAN, IMAGENET_STD

    mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
    if args.preset:
        try:
            model = build_model(get_preset(args.preset).config).eval()
        except ValueError as exc:
            raise UserError(str(exc)) from None
    else:
        from segment.bundled import default_checkpoint

        ckpt = load_checkpoint(args.checkpoint or default_checkpoint())
        model = model_from_checkpoint(ckpt)
        mean, std = ckpt["normalization"]["mean"], ckpt["normalization"]["std"]
    from segment.sizes import SIZES, parse_size

    size = parse_size(args.size, native=False, minimum=32,
                      error=f"--size {args.size!r}: use half, full or HxW of at least 32x32 (e.g. 608x832)")
    size = SIZES[size] if isinstance(size, str) else size
    if args.graph == "logits":
        if args.int8 or args.format != "onnx":
            raise UserError("--graph logits is exported as fp32 ONNX only; drop --int8 / use --format onnx")
        if not args.out:
            raise UserError("--graph logits needs --out FILE.onnx")
        print(f"wrote {export_onnx(model, args.out, size=size)}")
        return 0

    from segment.backends import export_artifact

    out = export_artifact(model=model, mean=mean, std=std, size=size, fmt=args.format,
                          precision="int8" if args.int8 else "fp32", calib_data=args.calib_data,
                          calib_count=args.calib_count, out=args.out)
    print(f"wrote {out}")
    return 0
