"""``segment export``: a checkpoint or preset to ONNX / OpenVINO (options and printing only).

The work is ``segment.export.export_onnx`` (``--graph logits``) and
``segment.backends.export_artifact`` (the app graph, fp32 or int8, through the export cache).
"""

from __future__ import annotations

import argparse
import sys

from segment.commands.options import add_int8_float_argument, int8_settings_arg


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", help="checkpoint to export (default: the bundled demo model)")
    parser.add_argument("--preset", help="export a randomly initialised preset instead of a checkpoint")
    parser.add_argument("--format", choices=["onnx", "openvino"], default="onnx")
    parser.add_argument("--size", default="half",
                        help="input shape of the graph: half (512x1024), full (1024x2048) or HxW, e.g. 512x704 for "
                             "the 4:3 bucket of half that 'segment predict' runs a 4:3 photo at (default: half)")
    parser.add_argument("--out", help="output file (.onnx) or OpenVINO .xml (default: the model cache, printed)")
    parser.add_argument("--graph", choices=["logits", "app"], default="app",
                        help="app: uint8 NHWC image in, 1/8-resolution logits out (what 'predict' runs); "
                             "logits: normalized NCHW float in, logits at input size out (the plain model)")
    parser.add_argument("--int8", action="store_true", help="static int8 quantization (QDQ), calibrated on --calib-data")
    parser.add_argument("--calib-data", help="folder of dataset images for int8 calibration (default: the bundled street photos)")
    parser.add_argument("--calib-count", type=int, default=16, help="calibration images (default 16)")
    add_int8_float_argument(parser)


def run(args: argparse.Namespace) -> int:
    from segment.checkpoint import load_checkpoint, model_from_checkpoint
    from segment.errors import UserError
    from segment.small_inputs import SizedModel, SmallInputState
    from segment.presets import get_preset
    from segment.model import build_model

    from segment.normalization import IMAGENET_MEAN, IMAGENET_STD

    mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
    small = None  # a checkpoint's small-input state, if it has one
    if args.preset:
        try:
            model = build_model(get_preset(args.preset).config).eval()
        except ValueError as exc:
            raise UserError(str(exc)) from None
    else:
        from segment.bundled import default_checkpoint

        ckpt = load_checkpoint(args.checkpoint or default_checkpoint())
        small = SmallInputState.from_checkpoint(ckpt)
        model = model_from_checkpoint(ckpt)
        mean, std = ckpt["normalization"]["mean"], ckpt["normalization"]["std"]
    from segment.sizes import SIZES, parse_size

    size = parse_size(args.size, native=False, minimum=32,
                      error=f"--size {args.size!r}: use half, full or HxW of at least 32x32 (e.g. 512x704)")
    size = SIZES[size] if isinstance(size, str) else size
    model = SizedModel(model=model, small=small).for_input(size)  # the model this shape runs, as in predict
    if args.graph == "logits":
        if args.int8 or args.format != "onnx":
            raise UserError("--graph logits is exported as fp32 ONNX only; drop --int8 / use --format onnx")
        if not args.out:
            raise UserError("--graph logits needs --out FILE.onnx")
        from segment.export import export_onnx

        print(f"wrote {export_onnx(model, args.out, size=size)}")
        return 0

    from segment.backends import export_artifact
    if args.int8_float is not None and not (args.int8 and args.format == "openvino"):
        raise UserError("--int8-float chooses what OpenVINO int8 (NNCF) keeps in float: "
                        "use it with --int8 --format openvino")
    settings = int8_settings_arg(args)
    if args.int8:  # the engines' quantizers print nothing here: say what the wait is for
        engine = "NNCF" if args.format == "openvino" else "ONNX Runtime"
        print(f"segment export: quantizing with {engine}, calibrated on "
              f"{args.calib_data or 'the bundled street photos'} (at most {args.calib_count} images)", file=sys.stderr)

    out = export_artifact(model=model, mean=mean, std=std, size=size, fmt=args.format,
                          precision="int8" if args.int8 else "fp32", calib_data=args.calib_data,
                          calib_count=args.calib_count, out=args.out, int8_settings=settings)
    print(f"wrote {out}")
    return 0
