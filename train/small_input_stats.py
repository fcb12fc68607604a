"""``segment small-input-stats SRC DST``: give a checkpoint a state of its own for small inputs.

Measures every BN layer's statistics on training frames at their own scale
(by default whole 360x480 CamVid frames, unscaled) and writes SRC with them
under ``segment.small_inputs.CHECKPOINT_KEY``: ``predict``, ``eval``, ``bench``,
``export`` and the demo then run any input of at most ``--max-pixels`` pixels
with them, and larger inputs with the checkpoint's own. With ``--weights FT``
(a fine-tune of SRC on frames near their own size) the small inputs get FT's
weights too, and the statistics are measured on those; SRC's weights stay as
they are for every larger input. ``--blend W`` stores the weighted mean of
that state and SRC's own instead. Why, and what it measured:
``segment/small_inputs.py`` and docs/train.md.
"""

from __future__ import annotations

import argparse

DEFAULT_SIDE_FACTOR = 1.1  # small = up to 1.1x the measuring crop's side (docs/train.md: where they stop helping)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from data.build import DATASETS
    from train.cli import number_pair

    p.add_argument("src", help="checkpoint (training or exported)")
    p.add_argument("dst", help="output checkpoint: SRC with the small-input state")
    p.add_argument("--weights", metavar="FT",
                   help="checkpoint whose weights small inputs run (a fine-tune of SRC on frames near their own "
                        "size, e.g. segment train --init-weights SRC --crop 360x480 --scale 0.75,1.5); "
                        "default: SRC's own weights, new statistics only")
    p.add_argument("--half", action="store_true",
                   help="store the --weights in fp16 (half the added bytes; BN statistics stay fp32)")
    p.add_argument("--blend", type=float, default=1.0, metavar="W",
                   help="store W x the measured state + (1 - W) x SRC's own weights and statistics (default 1: "
                        "the measured state; the bundled models use 0.5 with --weights, docs/train.md)")
    p.add_argument("--dataset", default="camvid", choices=DATASETS)
    p.add_argument("--data-root", required=True, help="the dataset's folder")
    p.add_argument("--split", default="train", help="frames to measure on (CamVid: a split expression, e.g. train+val)")
    p.add_argument("--crop", type=number_pair(int), default=(360, 480), metavar="HxW",
                   help="crop of each frame (default 360x480, a whole CamVid frame)")
    p.add_argument("--scale", type=number_pair(float), default=(1.0, 1.0), metavar="LO,HI",
                   help="scale range, drawn log-uniformly (default 1,1: frames at their own size)")
    p.add_argument("--batches", type=int, default=32, help="batches averaged (default 32)")
    p.add_argument("--batch", type=int, default=4, help="frames per batch (default 4)")
    p.add_argument("--max-pixels", type=int,
                   help=f"largest input (H*W of the run shape) given this state (default: the crop's pixels "
                        f"x {DEFAULT_SIDE_FACTOR}^2, 209088 for 360x480)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")


def measure_small_input_state(*, checkpoint: dict, dataset, batches: int, batch: int, seed: int,
                              with_weights: bool) -> dict:
    """``checkpoint``'s model's BN statistics averaged over ``batches`` of ``dataset``; its weights as well
    if ``with_weights``."""
    import itertools

    from torch.utils.data import DataLoader

    from segment.batchnorm import recalibrate_batchnorm
    from segment.checkpoint import model_from_checkpoint
    from segment.small_inputs import bn_statistics, float_state
    from train.sampling import EpochSampler, SeededDataset

    model = model_from_checkpoint(checkpoint)
    sampler = EpochSampler(size=len(dataset), global_batch=batch, seed=seed)
    loader = DataLoader(SeededDataset(dataset), batch_size=batch, sampler=sampler, num_workers=0, drop_last=True)

    def images():
        for epoch in itertools.count():  # more batches than an epoch holds: the next epoch's order
            sampler.set_epoch(epoch)
            for x, _ in loader:
                yield x

    recalibrate_batchnorm(model, itertools.islice(images(), batches))
    return float_state(model) if with_weights else bn_statistics(model)


def run(args: argparse.Namespace) -> int:
    import torch

    from data.build import build_dataset
    from data.transforms import train_transform
    from segment.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
    from segment.errors import UserError
    from segment.small_inputs import CHECKPOINT_KEY, ENTRY_KEYS, SmallInputState, float_state

    if args.half and not args.weights:
        raise UserError("--half stores the --weights in fp16; without --weights there are only statistics (fp32)")
    if args.batches < 1 or args.batch < 2:
        raise UserError("--batches must be at least 1 and --batch at least 2 (BatchNorm statistics need a batch)")
    if not 0.0 < args.blend <= 1.0:
        raise UserError(f"--blend {args.blend}: give a weight above 0 and at most 1 (1: the measured state alone)")
    if args.threads:
        torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.src)
    source = _weights_source(ckpt, args.weights) if args.weights else ckpt
    transform = train_transform(crop=tuple(args.crop), scale=tuple(args.scale), log_scale=True, hflip=True)
    dataset = build_dataset(name=args.dataset, root=args.data_root, split=args.split, transform=transform)
    if len(dataset) < args.batch:
        raise UserError(f"{args.dataset} {args.split} at {args.data_root} has {len(dataset)} frames, "
                        f"fewer than one batch (--batch {args.batch})")
    state = measure_small_input_state(checkpoint=source, dataset=dataset, batches=args.batches, batch=args.batch,
                                      seed=args.seed, with_weights=bool(args.weights))
    max_pixels = args.max_pixels or round(args.crop[0] * args.crop[1] * DEFAULT_SIDE_FACTOR ** 2)
    notes = {"dataset": args.dataset, "split": args.split, "crop": list(args.crop), "scale": list(args.scale),
             "batches": args.batches, "batch": args.batch, "seed": args.seed}
    if args.weights:
        notes["weights"] = _provenance(args.weights, source)
    entry = SmallInputState(max_pixels=max_pixels, state=state, notes=notes)
    if args.blend < 1.0:
        entry = entry.blended(float_state(model_from_checkpoint(ckpt)), weight=args.blend)
    out = {k: v for k, v in ckpt.items() if k not in ENTRY_KEYS}
    save_checkpoint(args.dst, {**out, CHECKPOINT_KEY: entry.to_checkpoint(half=args.half)})
    print(f"wrote {args.dst}: {entry.describe()} ({len(state)} tensors) for inputs up to {max_pixels} pixels, "
          f"statistics measured on {args.batches} batches of {args.batch} {args.dataset} {args.split} frames")
    return 0


def _weights_source(ckpt: dict, path: str) -> dict:
    """The ``--weights`` checkpoint, refused unless its weights fit SRC's model and label set."""
    from segment.checkpoint import load_checkpoint, model_from_checkpoint
    from segment.errors import UserError
    from segment.small_inputs import SmallInputState, float_state

    source = load_checkpoint(path)
    if list(source["classes"]) != list(ckpt["classes"]):
        raise UserError(f"--weights {path}: its classes differ from the checkpoint's; fine-tune that checkpoint "
                        "(segment train --init-weights) and pass the result")
    try:
        state = float_state(model_from_checkpoint(source))
        SmallInputState(max_pixels=1, state=state).apply(model_from_checkpoint(ckpt))
    except (ValueError, RuntimeError, KeyError) as exc:
        raise UserError(f"--weights {path}: its weights do not fit the checkpoint's model ({exc}); "
                        "pass a fine-tune of that checkpoint") from None
    return source


def _provenance(path: str, source: dict) -> dict:
    """Where the small inputs' weights came from: the file and, if it has them, its training settings."""
    from pathlib import Path

    cfg = source.get("train_config") or {}
    keep = ("init_weights", "train_split", "crop", "scale", "photometric", "iters", "lr", "batch", "class_weighting")
    return {"file": Path(path).name, **{k: cfg[k] for k in keep if k in cfg}}
