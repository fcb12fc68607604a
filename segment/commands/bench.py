"""``segment bench``: CPU latency of models x backends x precisions x sizes x threads, beside a fixed
peer (options and printing; the measurement is ``segment.bench.collect``, the protocol in its docstring)."""

from __future__ import annotations

import argparse
import json

from segment.bench import collect, format_table
from segment.commands.options import add_int8_float_argument, int8_settings_arg


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", action="append", default=[], help="model preset (repeatable; default: 'default')")
    parser.add_argument("--checkpoint", action="append", default=[], help="checkpoint to measure (repeatable)")
    parser.add_argument("--backend", action="append", default=[], choices=["torch", "onnxruntime", "openvino"],
                        help="backend (repeatable; default: every installed one)")
    from segment.backends.base import PRECISIONS

    parser.add_argument("--precision", action="append", default=[], choices=list(PRECISIONS),
                        help="precision (repeatable; default: every one the backend and CPU can run)")
    parser.add_argument("--size", action="append", default=[],
                        help="half, full (the paper's frames: the --image is fitted inside, in its shape bucket; "
                             "the default synthetic scene is 2:1, so 512x1024 and 1024x2048) or HxW "
                             "(repeatable; default: half and full)")
    parser.add_argument("--threads", action="append", type=int, default=[], help="threads (repeatable; default: 1 and all)")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per configuration (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    parser.add_argument("--peer", action="append", default=[], choices=["smp", "openvino"],
                        help="add a peer: smp = segmentation-models-pytorch DeepLabV3+ MobileNetV2 (random init); "
                             "openvino = the torchvision peer through OpenVINO, fp32 and bf16 (on by default when "
                             "OpenVINO is installed; naming it makes a missing OpenVINO an error)")
    parser.add_argument("--no-peer-openvino", action="store_true",
                        help="skip the OpenVINO rows of the torchvision peer (and peer_ratio_ov)")
    parser.add_argument("--torch-compile", action="store_true", help="also measure torch fp32 under torch.compile")
    parser.add_argument("--cache-dir", help="where exported models are cached (default ~/.cache/mnv3-lraspp)")
    parser.add_argument("--calib-data", help="folder of dataset images to calibrate int8 (default: the bundled street photos)")
    add_int8_float_argument(parser)
    parser.add_argument("--guard-data", help="labelled set for the mIoU guard (root of a dataset)")
    parser.add_argument("--guard-dataset", default="cityscapes", help="its kind: cityscapes, camvid, folder, synthetic")
    parser.add_argument("--guard-split", default="val")
    parser.add_argument("--guard-limit", type=int, default=20, help="images of the labelled set to use (default 20)")
    parser.add_argument("--guard-out", help="also write the guard records to this JSON file; ship it beside the "
                                            "checkpoint as <checkpoint>.guard.json and 'auto' uses it on other machines "
                                            "with the same engine versions and CPU kind")
    parser.add_argument("--image", help="RGB image to time and check agreement on, resized for each size as "
                                        "'segment predict' would (default: a synthetic street scene)")
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of a table")


def run(args: argparse.Namespace) -> int:
    from segment.errors import UserError

    if args.runs < 1 or args.warmup < 0:
        raise UserError("--runs must be >= 1 and --warmup >= 0")
    if any(t < 1 for t in args.threads):
        raise UserError("--threads must be >= 1")
    int8_settings_arg(args)  # a bad group fails here, before anything is built
    rows = collect(args)
    print(json.dumps(rows, indent=1) if args.json else format_table(rows))
    return 0
