"""``segment synth``: write a synthetic Cityscapes-layout dataset."""

from __future__ import annotations

import argparse
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="folder to write the tree into (created if missing)")
    parser.add_argument("--n", type=int, required=True, help="number of images per split")
    parser.add_argument("--size", default="256x512", help="HxW, up to 1024x2048 (default 256x512)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same scenes (default 0)")
    parser.add_argument("--splits", default="train,val", help="comma-separated splits (default train,val)")
    parser.add_argument("--compression", type=int, default=1, choices=range(10), metavar="0-9",
                        help="PNG zlib level (default 1: fast to write, as fast to decode)")


def run(args: argparse.Namespace) -> int:
    from .synthetic import parse_size, write_synthetic_cityscapes

    size = parse_size(args.size)
    splits = tuple(s.strip() for s in args.splits.split(",") if s.strip())
    start = time.perf_counter()
    out = write_synthetic_cityscapes(out=args.out, n=args.n, size=size, seed=args.seed, splits=splits,
                                     compression=args.compression)
    took = time.perf_counter() - start
    total = args.n * len(splits)
    print(f"wrote {total} images ({args.n} per split: {', '.join(splits)}) at {size[0]}x{size[1]} "
          f"to {out} in {took:.1f} s")
    print(f"check it: segment data check --dataset synthetic --root {out}")
    return 0
