"""``segment data check``: validate a dataset on its own and print counts per split."""

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
    splits = tuple(s.strip() for s in args.splits.split(",") if s.strip()) if args.splits else None
    start = time.perf_counter()
    counts = check_dataset(dataset=args.dataset, root=args.root, splits=splits, deep=args.deep)
    took = time.perf_counter() - start
    print(f"{args.dataset} at {args.root}: OK ({'deep' if args.deep else 'headers + labels'} check, {took:.1f} s)")
    for split, n in counts.items():
        print(f"  {split:<6} {n:6d} image/label pairs")
    return 0
