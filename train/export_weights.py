"""``segment export-weights SRC DST``: shrink a training checkpoint to what inference needs.

Keeps fp32 weights, model config, classes, palette, normalization, and the
run's metrics, config and command; drops optimizer, scheduler and RNG state
(about two thirds of a training checkpoint). The result is still our
checkpoint format, so ``segment eval/predict/demo --checkpoint DST`` read it.
The work is ``train.checkpointing.export_weights``; this module only parses and prints.

``python -m train.export_weights SRC DST`` is the same command under its older name
(the shipped weights' provenance cites it).
"""

from __future__ import annotations

import argparse
import json
import sys


def parse_note(item: str) -> tuple[str, object]:
    """``KEY=VALUE``; VALUE is read as JSON when it is JSON (``1.2``, ``true``), else kept as text."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{item!r}: expected KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="training checkpoint (e.g. runs/x/best.pt)")
    p.add_argument("dst", help="output file")
    p.add_argument("--note", action="append", default=[], type=parse_note, metavar="KEY=VALUE",
                   help="extra facts stored under 'trained' (e.g. wall_time_h=1.2); repeatable")
    p.add_argument("--average-with", metavar="CKPT",
                   help="write a weighted mean of SRC's weights and CKPT's (another fine-tune of the same model, "
                        "e.g. the weights SRC started from)")
    p.add_argument("--src-weight", type=float,
                   help="with --average-with: SRC's share, in [0, 1]; CKPT gets the rest (default: 0.5)")


def run(args: argparse.Namespace) -> int:
    import math

    from segment.errors import UserError
    from train.checkpointing import export_weights

    if args.src_weight is not None and args.average_with is None:
        raise UserError("--src-weight needs --average-with (the checkpoint to average SRC with)")
    src_weight = 0.5 if args.src_weight is None else args.src_weight
    try:
        out = export_weights(args.src, args.dst, average_with=args.average_with, src_weight=src_weight,
                             **dict(args.note))
    except ValueError as e:
        raise UserError(str(e)) from None
    n = sum(v.numel() for v in out["model"].values())
    miou = out.get("metrics", {}).get("miou")
    has_val = isinstance(miou, float) and not math.isnan(miou)  # NaN: the run had no val split
    scored = f"val mIoU {miou:.4f}" if has_val else "no val metrics (trained without a val split)"
    print(f"wrote {args.dst}: {n / 1e6:.2f}M values, {scored}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m train.export_weights ...``: exactly ``segment export-weights ...``."""
    from segment.cli import main as segment_main

    return segment_main(["export-weights", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
