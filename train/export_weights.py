"""Shrink a training checkpoint to what inference needs: ``python -m train.export_weights SRC DST``.

Keeps fp32 weights, model config, classes, palette, normalization, and the
run's metrics, config and command; drops optimizer, scheduler and RNG state
(about two thirds of a training checkpoint). The result is still our
checkpoint format, so ``segment eval/predict/demo --checkpoint DST`` read it.
"""

from __future__ import annotations

import argparse
import json
import sys

from train.checkpointing import export_weights


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.export_weights", description=__doc__.splitlines()[0])
    p.add_argument("src", help="training checkpoint (e.g. runs/x/best.pt)")
    p.add_argument("dst", help="output file")
    p.add_argument("--note", action="append", default=[], metavar="KEY=VALUE",
                   help="extra facts stored under 'trained' (e.g. wall_time_h=1.2); repeatable")
    args = p.parse_args(argv)
    notes = {}
    for item in args.note:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--note {item!r}: expected KEY=VALUE")
        try:
            notes[key] = json.loads(value)
        except json.JSONDecodeError:
            notes[key] = value
    try:
        out = export_weights(args.src, args.dst, **notes)
    except Exception as exc:
        if getattr(exc, "is_user_error", False):
            print(f"export_weights: error: {exc}", file=sys.stderr)
            return 2
        raise
    n = sum(v.numel() for v in out["model"].values())
    print(f"wrote {args.dst}: {n / 1e6:.2f}M values, mIoU {out.get('metrics', {}).get('miou', float('nan')):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
