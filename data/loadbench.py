"""Training-pipeline loading speed: images/s per worker at full resolution (the library of
``segment data loadbench``, whose options and printing are in ``data.cli``).

    segment data loadbench                       # writes 8 synthetic 1024x2048 frames to a temp dir
    segment data loadbench --root CITYSCAPES     # or measures a real tree (train split)
    segment data loadbench --loader-workers 1,4,8,16   # also a real DataLoader with N workers

``python -m data.loadbench`` is the same command under its older name.

The tree is also copied at PNG level 0 (``segment data recompress``) to time
the faster-to-decode storage.

Everything runs in this process (one worker) unless --loader-workers is given.
Each figure is the median over all images x --repeat runs, after one warm-up pass.
It times the stages separately (PNG decode, label decode + id mapping,
geometric augmentation, normalization) and the whole ``dataset[i]`` of the
reference (albumentations RandomScale -> PadIfNeeded -> RandomCrop) and the
default fast pipeline (one warp), then says how many workers keep a GPU fed.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def _median_ms(fn, items, repeat: int) -> float:
    for item in items[: min(2, len(items))]:  # warm-up: page cache, OpenCV/allocator first-use
        fn(item)
    times = []
    for _ in range(repeat):
        for item in items:
            start = time.perf_counter()
            fn(item)
            times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _png_levels(image_path: Path, tmp: Path, repeat: int) -> list[dict]:
    """Decode time and size of the same frame stored at several zlib levels."""
    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    rows = []
    for level in (0, 1, 3, 6, 9):
        path = tmp / f"level{level}.png"
        start = time.perf_counter()
        cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, level])
        write_ms = 1e3 * (time.perf_counter() - start)
        ms = _median_ms(lambda p: cv2.imread(str(p), cv2.IMREAD_COLOR), [path] * 3, repeat)
        rows.append({"level": level, "MB": round(path.stat().st_size / 1e6, 2), "decode_ms": round(ms, 1),
                     "write_ms": round(write_ms, 1)})
    return rows


def _interleaved_ms(fns: dict, items, repeat: int) -> dict[str, float]:
    """Median ms of each fn over items x repeat, the fns timed in turn on each item.

    Interleaving matters on a shared machine: load that comes and goes hits every
    variant alike instead of whichever happened to run during it.
    """
    for fn in fns.values():  # warm-up: page cache, OpenCV/allocator first use
        for item in items[: min(2, len(items))]:
            fn(item)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for item in items:
            for name, fn in fns.items():
                start = time.perf_counter()
                fn(item)
                times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def measure(*, root: Path, crop: int, repeat: int, limit: int, stored_root: Path | None = None) -> dict:
    import albumentations as A
    import torch

    from .cityscapes import CityscapesDataset
    from .imread import read_rgb
    from .transforms import train_transform

    torch.set_num_threads(1)
    base = CityscapesDataset(root=root, split="train", validate=False)
    files = base.files[:limit]
    idx = list(range(len(files)))
    h, w = cv2.imread(str(files[0][0]), cv2.IMREAD_UNCHANGED).shape[:2]
    loaded = [base.load(i) for i in idx]
    geo_ref = train_transform(crop=(crop, crop), fast=False)
    geo_fast = train_transform(crop=(crop, crop), fast=True)
    # The geometric part alone = each pipeline without its last two steps (Normalize, ToTensorV2).
    only_ref, only_fast = A.Compose(geo_ref.transforms[:-2]), A.Compose(geo_fast.transforms[:-2])
    norm = A.Compose(geo_fast.transforms[-2:])
    crops = [only_fast(image=img, mask=m) for img, m in loaded]

    stage_fns = {
        "decode image: cv2.imread COLOR + cvtColor RGB":
            lambda i: cv2.cvtColor(cv2.imread(str(files[i][0]), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB),
        "decode image: read_rgb, Pillow (used)": lambda i: read_rgb(files[i][0]),
        "decode label + labelId->trainId LUT":
            lambda i: base.to_train_ids(cv2.imread(str(files[i][1]), cv2.IMREAD_UNCHANGED), files[i][1]),
        "augment: scale+pad+crop+flip, albumentations chain":
            lambda i: only_ref(image=loaded[i][0], mask=loaded[i][1]),
        "augment: scale+crop+flip in one warp (used)": lambda i: only_fast(image=loaded[i][0], mask=loaded[i][1]),
        f"normalize + to tensor ({crop}x{crop})": lambda i: norm(image=crops[i]["image"], mask=crops[i]["mask"]),
    }
    datasets = {
        "reference (albumentations chain)": CityscapesDataset(root=root, split="train", transform=geo_ref, validate=False),
        "fast (one warp, default)": CityscapesDataset(root=root, split="train", transform=geo_fast, validate=False),
    }
    if stored_root is not None:
        stored = CityscapesDataset(root=stored_root, split="train", transform=geo_fast, validate=False)
        stage_fns["decode image: PNG stored at level 0 (segment data recompress)"] = (
            lambda i: read_rgb(stored.files[i][0]))
        datasets["fast + images recompressed at PNG level 0"] = stored
    stages = _interleaved_ms(stage_fns, idx, repeat)
    whole = _interleaved_ms({name: (lambda i, d=ds: d[i]) for name, ds in datasets.items()}, idx, repeat)
    pipelines = {name: {"ms": round(ms, 1), "images_per_s": round(1e3 / ms, 2)} for name, ms in whole.items()}
    return {"image_size": [h, w], "crop": crop, "images": len(files), "repeat": repeat,
            "stages_ms": {k: round(v, 1) for k, v in stages.items()}, "pipelines": pipelines}


def measure_loader(*, root: Path, crop: int, workers: int, batch: int, batches: int) -> float:
    """Steady-state images/s of a real DataLoader, timed over at least ``batches`` batches.

    Each worker builds whole batches and all start together, so the first round
    (one batch per worker) arrives at once after start-up. Timing from the first
    batch counted batches built before the clock started: on a 16-core GPU machine
    it gave 271 images/s for 15 workers where the trainer measured 85. So the clock
    starts after that round, and runs over several rounds.
    """
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    from .base import worker_init_fn
    from .cityscapes import CityscapesDataset
    from .transforms import train_transform

    ds = CityscapesDataset(root=root, split="train", transform=train_transform(crop=(crop, crop)), validate=False)
    skip = max(1, workers)  # the first round, built during worker start-up
    timed = max(batches, 3 * workers)
    sampler = RandomSampler(ds, replacement=True, num_samples=batch * (skip + timed))
    loader = DataLoader(ds, batch_size=batch, sampler=sampler, num_workers=workers,
                        worker_init_fn=worker_init_fn, persistent_workers=False, prefetch_factor=4 if workers else None)
    it = iter(loader)
    for _ in range(skip):
        next(it)
    start = time.perf_counter()
    n = 0
    for images, _ in it:
        n += images.shape[0]
    took = time.perf_counter() - start
    del it
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return n / took


def workers_needed(images_per_s: float, *, batch: int = 16, steps_s=(0.1, 0.15, 0.2)) -> dict[str, int]:
    return {f"{s:g} s/step": int(np.ceil(batch / s / images_per_s)) for s in steps_s}


def benchmark(*, root: Path | None = None, n: int = 8, size: str = "1024x2048", crop: int = 769, repeat: int = 3,
              limit: int = 16, cv_threads: int = 0, loader_workers: tuple[int, ...] = (), batch: int = 16,
              log=print) -> dict:
    """The whole measurement of ``segment data loadbench``: the figures as a dict.

    Without ``root``, ``n`` synthetic frames of ``size`` are written to a temporary folder.
    The tree is also copied at PNG level 0 to time the faster-to-decode storage. ``log``
    receives the progress lines (frames written, each DataLoader rate).
    """
    cv2.setNumThreads(cv_threads)
    with tempfile.TemporaryDirectory(prefix="loadbench-") as tmp:
        if root is None:
            from .synthetic import parse_size, write_synthetic_cityscapes

            start = time.perf_counter()
            root = write_synthetic_cityscapes(out=Path(tmp) / "cs", n=n, size=parse_size(size),
                                              seed=0, splits=("train",))
            log(f"wrote {n} synthetic frames at {size} in {time.perf_counter() - start:.1f} s")
        from .recompress import recompress_tree

        stored = Path(tmp) / "stored"
        recompress_tree(src=root, out=stored, level=0)
        result = measure(root=root, crop=crop, repeat=repeat, limit=limit, stored_root=stored)
        first_image = sorted((root / "leftImg8bit" / "train").glob("*/*_leftImg8bit.png"))[0]
        result["png_levels"] = _png_levels(first_image, Path(tmp), repeat)
        result["cv2_threads"] = cv2.getNumThreads()
        result["cpu"] = f"{os.cpu_count()} logical CPUs visible"
        if loader_workers:
            result["loader"] = {}
            for workers in loader_workers:
                rate = measure_loader(root=root, crop=crop, workers=workers, batch=batch, batches=6)
                result["loader"][workers] = round(rate, 1)
                log(f"DataLoader, {workers} workers: {rate:.1f} images/s")
    result["workers_for_batch16"] = {name: workers_needed(r["images_per_s"], batch=16)
                                     for name, r in result["pipelines"].items()}
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m data.loadbench ...``: exactly ``segment data loadbench ...``."""
    import sys

    from segment.cli import main as segment_main

    return segment_main(["data", "loadbench", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
