"""``segment data``: ``check`` validates a dataset and prints counts per split;
``recompress`` copies a Cityscapes tree with PNGs that decode faster; ``loadbench`` times
the training pipeline's loading (``data.loadbench``)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .build import DATASETS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate a dataset's layout and files; print counts per split")
    check.add_argument("--dataset", required=True, choices=DATASETS)
    check.add_argument("--root", "--data-root", dest="root", required=True, help="dataset root folder")
    check.add_argument("--splits", default=None,
                       help="comma-separated splits (default: train,val; folder: the split folders present)")
    check.add_argument("--deep", action="store_true",
                       help="also decode every image in full (slow; catches corruption inside files)")
    rec = sub.add_parser("recompress", help="copy a Cityscapes tree with its images stored at a faster-to-decode PNG level")
    rec.add_argument("--root", "--data-root", dest="root", required=True, help="the Cityscapes (or synthetic) tree to read")
    rec.add_argument("--out", required=True, help="folder for the copy (the original is never modified)")
    rec.add_argument("--level", type=int, default=0, help="PNG zlib level 0-9 (default 0: stored, fastest to decode)")
    bench = sub.add_parser("loadbench", help="time the training pipeline's loading: images/s per worker",
                           description="Training-pipeline loading speed: images/s per worker at full resolution.")
    bench.add_argument("--root", "--data-root", dest="root", type=Path, help="a Cityscapes-layout tree (default: write synthetic frames)")
    bench.add_argument("--n", type=int, default=8, help="synthetic frames to write (default 8)")
    bench.add_argument("--size", default="1024x2048", help="synthetic frame size (default 1024x2048)")
    bench.add_argument("--crop", type=int, default=769)
    bench.add_argument("--repeat", type=int, default=3)
    bench.add_argument("--limit", type=int, default=16, help="images to time (default 16)")
    bench.add_argument("--cv-threads", type=int, default=0,
                       help="cv2.setNumThreads (0 = OpenCV single-threaded, as in DataLoader workers)")
    bench.add_argument("--loader-workers", default="", help="comma-separated worker counts for a DataLoader run")
    bench.add_argument("--batch", type=int, default=16)
    bench.add_argument("--json", type=Path, help="also write the figures here")


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


def _loadbench(args: argparse.Namespace) -> int:
    from .loadbench import benchmark

    result = benchmark(root=args.root, n=args.n, size=args.size, crop=args.crop, repeat=args.repeat,
                       limit=args.limit, cv_threads=args.cv_threads, batch=args.batch,
                       loader_workers=tuple(int(v) for v in args.loader_workers.split(",") if v.strip()),
                       log=lambda line: print(line, flush=True))
    h, w = result["image_size"]
    print(f"\nframes {h}x{w}, crop {args.crop}, {result['images']} images x {args.repeat} runs, "
          f"1 process, torch threads 1, cv2 threads {result['cv2_threads']}; median ms per image")
    for name, ms in result["stages_ms"].items():
        print(f"  {ms:8.1f} ms  {name}")
    print("whole dataset[i] (decode + labels + augment + normalize):")
    for name, r in result["pipelines"].items():
        print(f"  {r['ms']:8.1f} ms  {r['images_per_s']:6.2f} images/s per worker  {name}")
    print("PNG zlib level of the stored frame: size, decode time, write time:")
    for row in result["png_levels"]:
        print(f"  level {row['level']}: {row['MB']:5.2f} MB  decode {row['decode_ms']:6.1f} ms  write {row['write_ms']:7.1f} ms")
    for name, need in result["workers_for_batch16"].items():
        print(f"workers to feed batch 16, {name} ({result['pipelines'][name]['images_per_s']:.2f} images/s each): "
              + ", ".join(f"{k}: {v}" for k, v in need.items()))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.data_command == "loadbench":
        return _loadbench(args)
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
