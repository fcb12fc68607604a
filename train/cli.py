"""``segment train``: options -> TrainConfig -> train.trainer.main.

A recipe (``--recipe paper|cpu|camvid``) fills every field; options given on
the command line override it. With ``--resume``, the checkpoint's own config
is the base instead, so a plain ``segment train --resume runs/x/last.pt``
continues the same run.
"""

from __future__ import annotations

import argparse
import shlex
import sys

# option -> TrainConfig field (all default to None = "not given")
_FIELDS = {
    "dataset": "dataset", "data_root": "data_root", "train_split": "train_split", "val_split": "val_split",
    "preset": "preset", "crop": "crop", "scale": "scale", "log_scale": "log_scale", "photometric": "photometric",
    "pad_fill": "pad_fill",
    "batch": "batch", "iters": "iters", "lr": "lr",
    "lr_schedule": "lr_schedule", "warmup_iters": "warmup_iters", "optimizer": "optimizer",
    "weight_decay": "weight_decay", "momentum": "momentum", "loss": "loss", "class_weighting": "class_weighting",
    "amp": "amp", "channels_last": "channels_last", "compile": "compile", "device": "device",
    "threads": "threads", "workers": "workers", "seed": "seed", "out": "out", "eval_every": "eval_every",
    "ckpt_every": "ckpt_every", "log_every": "log_every", "eval_size": "eval_size", "val_limit": "val_limit",
    "bn_recalib_batches": "bn_recalib_batches", "init_weights": "init_weights", "extra_train": "extra_train",
    "data_on_device": "data_on_device", "distill_from": "distill_from", "distill_weight": "distill_weight",
    "distill_temperature": "distill_temperature",
}


def number_pair(kind):
    def parse(text: str):
        parts = text.lower().replace(",", "x").split("x")
        try:
            values = tuple(kind(p) for p in parts)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected two numbers such as 512x1024") from None
        if len(values) == 1:
            values = values * 2
        if len(values) != 2:
            raise argparse.ArgumentTypeError(f"{text!r}: expected two numbers such as 512x1024")
        return values
    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default="paper", help="paper (Cityscapes protocol) | cpu (minutes on 2 cores) | "
                   "camvid (the demo weights); default paper")
    p.add_argument("--resume", metavar="CKPT", help="continue a run from its last.pt (its config is the base)")
    p.add_argument("--stop-at", type=int, metavar="ITER", help="save and exit at this iteration, as if preempted")
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=["cityscapes", "camvid", "synthetic", "folder"])
    g.add_argument("--data-root", metavar="DIR")
    g.add_argument("--train-split")
    g.add_argument("--val-split", help="evaluated during training; '' for none")
    g.add_argument("--crop", type=number_pair(int), metavar="HxW", help="training crop, e.g. 769x769")
    g.add_argument("--scale", type=number_pair(float), metavar="LO,HI", help="random scale range, e.g. 0.5,2.0")
    g.add_argument("--log-scale", action=argparse.BooleanOptionalAction, default=None,
                   help="draw the scale log-uniformly over --scale (default: uniformly)")
    g.add_argument("--photometric", action=argparse.BooleanOptionalAction, default=None,
                   help="random exposure, contrast, saturation and white balance after the crop, for photos "
                        "from other cameras and light (default: off, as the paper; CPU data path only)")
    g.add_argument("--pad-fill", choices=["mean", "black"],
                   help="what pads a crop where the scaled image is smaller: the mean colour, zero after "
                        "normalizing, as DeepLab pads (default), or black (what the shipped weights used)")
    g.add_argument("--workers", type=int, help="DataLoader workers per process")
    g.add_argument("--data-on-device", action=argparse.BooleanOptionalAction, default=None,
                   help="decode the training set once onto the training device and augment it there, batched "
                   "(every process holds all of it; refused if it does not fit); evaluation keeps the loader")
    g.add_argument("--extra-train", action="append", metavar="NAME:ROOT",
                   help="another training set concatenated to the main one (repeatable), e.g. synthetic:runs/synth; "
                   "same label space required")
    g.add_argument("--eval-size", help="native | half | full | HxW (image size at evaluation)")
    g.add_argument("--val-limit", type=int, help="evaluate on the first N val images only")
    g.add_argument("--bn-recalib-batches", type=int, metavar="N",
                   help="recompute BN statistics on N training batches before each evaluation (0 = off)")
    g = p.add_argument_group("model and optimisation")
    g.add_argument("--preset", help="model preset (segment zoo), default 'default' = Table 7 row 8")
    g.add_argument("--init-weights", metavar="CKPT",
                   help="start from this checkpoint's model weights (fine-tune; fresh optimizer and schedule)")
    g.add_argument("--batch", type=int, help="global batch size (all processes together)")
    g.add_argument("--iters", type=int, help="optimizer steps")
    g.add_argument("--lr", type=float, help="peak learning rate")
    g.add_argument("--lr-schedule", choices=["poly", "cosine", "onecycle", "constant"])
    g.add_argument("--warmup-iters", type=int)
    g.add_argument("--optimizer", choices=["sgd", "adamw"])
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--momentum", type=float)
    g.add_argument("--loss", choices=["ce", "lovasz", "dice", "focal", "ce+lovasz"])
    g.add_argument("--class-weighting", choices=["none", "enet"])
    g.add_argument("--distill-from", metavar="CKPT",
                   help="a teacher checkpoint (same classes): the KL divergence from its per-pixel probabilities "
                        "joins the loss, e.g. the large model teaching the small one (docs/train.md)")
    g.add_argument("--distill-weight", type=float, metavar="W", help="weight of the teacher's term (default 1)")
    g.add_argument("--distill-temperature", type=float, metavar="T",
                   help="softmax temperature of the teacher's term (default 1)")
    g = p.add_argument_group("speed and bookkeeping")
    g.add_argument("--amp", choices=["none", "bf16", "fp16"], help="autocast precision")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None, help="torch.compile the model")
    g.add_argument("--device", help="auto | cpu | cuda")
    g.add_argument("--threads", type=int, help="torch CPU threads per process (0 = default)")
    g.add_argument("--seed", type=int)
    g.add_argument("--out", metavar="DIR", help="output folder (checkpoints, metrics.jsonl, tb/)")
    g.add_argument("--eval-every", type=int)
    g.add_argument("--ckpt-every", type=int)
    g.add_argument("--log-every", type=int)


def config_from_args(args: argparse.Namespace):
    from train.config import TrainConfig, get_recipe

    overrides = {field: getattr(args, opt) for opt, field in _FIELDS.items()}
    if overrides["extra_train"] is not None:
        overrides["extra_train"] = tuple(overrides["extra_train"])
    if args.resume:
        from train.checkpointing import load_training_checkpoint

        base = TrainConfig.from_dict(load_training_checkpoint(args.resume)["train_config"])
    else:
        base = get_recipe(args.recipe)
    return base.override(**overrides)


def run(args: argparse.Namespace) -> int:
    from segment.errors import UserError
    from train.trainer import main

    try:
        cfg = config_from_args(args)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    command = "segment " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    return main(cfg, resume=args.resume, stop_at=args.stop_at, command=command)
