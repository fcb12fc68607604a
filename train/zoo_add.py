"""``segment zoo-add ROW CHECKPOINT``: put a trained paper row into the model zoo (``segment.zoo_weights``).

Writes ``<zoo>/<ROW>.pt`` (weights only, fp16), evaluates that very file on a
labelled split at native, half and full size (aspect ratio kept, as
``segment eval --size``), and records row, file, sha256, architecture,
parameters, training command, data and the three mIoUs in the manifest. The
checkpoint must hold the row's architecture (the columns of Table 7: backbone,
width, output stride, RF2, head, F).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SIZES = ("native", "half", "full")
ARCHITECTURE = ("backbone", "width_mult", "output_stride", "rf2", "head", "head_channels")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("row", help="paper row, e.g. T7-5 or T8-V3-OS32 (segment zoo lists them)")
    p.add_argument("checkpoint", help="checkpoint written by 'segment train' with that row's architecture")
    p.add_argument("--dataset", default="camvid", choices=["cityscapes", "camvid", "folder"],
                   help="labelled set the mIoUs are measured on (default camvid)")
    p.add_argument("--data-root", required=True, metavar="DIR")
    p.add_argument("--split", default="val", help="its split (default val)")
    p.add_argument("--zoo", metavar="DIR", help="zoo folder (default: $MNV3_ZOO_DIR or zoo/ in the source tree)")
    p.add_argument("--note", action="append", default=[], metavar="KEY=VALUE",
                   help="facts stored under 'trained' in the manifest (e.g. wall_min=31 hardware='2 Xeon cores')")
    p.add_argument("--workers", type=int, default=1, help="DataLoader workers for the evaluation")


def run(args: argparse.Namespace) -> int:
    from segment.checkpoint import load_checkpoint
    from segment.complexity import count_params
    from segment.presets import get_preset
    from segment.zoo_weights import ZooEntry, read_manifest, sha256_of, write_manifest, zoo_dir
    from train.checkpointing import export_weights
    from train.eval_cli import evaluate_checkpoint
    from train.export_weights import parse_note

    folder = Path(args.zoo) if args.zoo else zoo_dir()
    preset, ckpt = _matching_preset(args.row, load_checkpoint(args.checkpoint), args.checkpoint, get_preset)
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / f"{preset.paper.row}.pt"
    notes = dict(parse_note(n) for n in args.note)
    out = export_weights(args.checkpoint, dst, half=True, **notes)
    miou = {}
    for size in SIZES:
        result, table = evaluate_checkpoint(checkpoint=dst, dataset=args.dataset, data_root=args.data_root,
                                            split=args.split, size=size, workers=args.workers)
        miou[size] = round(100 * result["miou"], 2)
        print(table)
    cfg = ckpt.get("train_config", {})
    entry = ZooEntry(
        row=preset.paper.row, file=dst.name, sha256=sha256_of(dst), preset=preset.name,
        params=count_params(_model(out)), recipe=ckpt.get("command", ""),
        data=f"{cfg.get('dataset', '?')} {cfg.get('train_split', '?')}; mIoU on {args.dataset} {args.split}",
        miou=miou, trained={"iterations": ckpt.get("iteration"), **notes})
    entries = read_manifest(folder)
    entries[entry.row.upper()] = entry
    path = write_manifest(entries, folder)
    print(f"wrote {dst} and {path}: {json.dumps(miou)}")
    return 0


def _matching_preset(row: str, ckpt: dict, path, get_preset):
    """The row's preset, after checking the checkpoint holds its architecture."""
    from segment.config import ModelConfig
    from segment.errors import UserError

    try:
        preset = get_preset(row)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    config = ModelConfig.from_dict(ckpt["model_config"])
    differ = [f for f in ARCHITECTURE if getattr(config, f) != getattr(preset.config, f)]
    if differ:
        got = ", ".join(f"{f}={getattr(config, f)!r} (row: {getattr(preset.config, f)!r})" for f in differ)
        raise UserError(f"{path} is not {preset.paper.row}'s architecture: {got}; "
                        f"train it with 'segment train --preset {preset.paper.row}'")
    return preset, ckpt


def _model(ckpt: dict):
    from segment.checkpoint import model_from_checkpoint

    return model_from_checkpoint(ckpt)
