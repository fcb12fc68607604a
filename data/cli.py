"""``segment data``: ``check`` validates a dataset and prints counts per split;
``recompress`` copies a Cityscapes tree with PNGs that decode faster."""

from __future__ import annotations

import argparse
import time

from .build import DATASETS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate a dataset's layout and files; print counts per split")
    check.add_argument("--dataset", required=True, choices=DATASETS)
    check.add_argument("--root", required=True, help="dataset root folder")
    check.add_argument("--splits", default=None,
                       help="comma-separated splits (default: train,val; folder: the split folders present)")
    check.add_argument("--deep", action="store_true",
                       help="also decode every image in full (slow; catches corruption inside files)")
    rec = sub.add_parser("recompress", help="copy a Cityscapes tree with its images stored at a faster-to-decode PNG level")
    rec.add_argument("--root", required=True, help="the Cityscapes (or synthetic) tree to read")
    rec.add_argument("--out", required=True, help="folder for the copy (the original is never modified)")
    rec.add_argument("--level", type=int, default=0, help="PNG zlib level 0-9 (default 0: stored, fastest to decode)")


def check_dataset(*, dataset: str, root: str, splits: tuple[str, ...] | None = None, deep: bool = False) -> dict[str, int]:
    """Validate ``root`` as ``dataset``; return pairs per split. Raises DatasetError."""
    if dataset in ("cityscapes", "synthetic"):
        from .cityscapes import validate_cityscapes

        return validate_cityscapes(root, splits or ("train", "val"), deep=deep)
    if dataset == "camvid":
        from .camvid import validate_camvid

        return validate_camvid(root, splits or ("train", "val"), deep=deep)
    from .folder import folder_splits, validate_folder

    return validate_folder(root, splits or folder_splits(root), deep=deep)


def run(args: argparse.Namespace) -> int:
    if args.data_command == "recompress":
        from .recompress import recompress_tree

        start = time.perf_counter()
        n = recompress_tree(src=args.root, out=args.out, level=args.level)
        print(f"wrote {n} PNGs at zlib level {args.level} to {args.out} in {time.perf_counter() - start:.1f} s")
        return 0
    splits = tuple(s.strip() for s in args.splits.split(",") if s.strip()) if args.splits else None
    start = time.perf_counter()
    counts = check_dataset(dataset=args.dataset, root=args.root, splits=splits, deep=args.deep)
    took = time.perf_counter() - start
    print(f"{args.dataset} at {args.root}: OK ({'deep' if args.deep else 'headers + labels'} check, {took:.1f} s)")
    for split, n in counts.items():
        print(f"  {split:<6} {n:6d} image/label pairs")
    return 0
