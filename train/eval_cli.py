"""``segment eval``: per-class IoU, mIoU and pixel accuracy of a checkpoint on a dataset split.

The model runs on the image at ``--size`` (native = the image's own size; half
and full = the image fitted inside the paper's two Cityscapes inputs, 512x1024
and 1024x2048 (turned for a portrait image), which a 2:1 image runs at exactly,
as ``segment predict`` runs them: ``segment.sizes``) and is
always scored at the label's full size. ``--json`` prints, as the last line,
``{"miou", "per_class", "pixel_acc", "images"}`` (fractions in [0, 1]).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", help="checkpoint file or a trained zoo row such as T7-5 "
                                        "(default: the bundled CamVid demo weights)")
    p.add_argument("--dataset", required=True, choices=["cityscapes", "camvid", "synthetic", "folder"])
    p.add_argument("--data-root", required=True, metavar="DIR")
    p.add_argument("--split", default="val")
    p.add_argument("--size", default="native",
                   help="native | half | full | HxW (default native); half and full fit the image "
                        "inside the paper's 512x1024 / 1024x2048 (turned for portrait images), keeping its aspect "
                        "ratio as in 'segment predict': 2:1 images run at exactly those; HxW is exactly that")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line (last line)")
    p.add_argument("--limit", type=int, default=0, help="evaluate the first N images only")
    # The keys of data.transforms.PHOTO_CHANGES, spelled out so that '--help' does not import
    # albumentations (tests/data/test_transforms.py checks that they match).
    p.add_argument("--photo-change", choices=["darker", "brighter", "low-contrast", "warm", "cool"],
                   help="change every photo's exposure or colour first (data.transforms.PHOTO_CHANGES): "
                        "robustness to other cameras and light")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--save-labelids", metavar="DIR",
                   help="also write each prediction as an official Cityscapes labelId PNG (<name>_pred.png)")


def run(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.checkpoint is None:
        from segment.bundled import default_checkpoint

        args.checkpoint = default_checkpoint()
    result, table = evaluate_checkpoint(
        checkpoint=args.checkpoint, dataset=args.dataset, data_root=args.data_root, split=args.split,
        size=args.size, limit=args.limit, workers=args.workers, device=args.device, amp=args.amp,
        labelid_dir=args.save_labelids, progress=not args.json, photo_change=args.photo_change)
    print(table, file=sys.stderr if args.json else sys.stdout)
    if args.json:
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in result.items()}
        clean["per_class"] = {k: (None if math.isnan(v) else v) for k, v in result["per_class"].items()}
        print(json.dumps(clean))
    return 0


def evaluate_checkpoint(*, checkpoint, dataset: str, data_root, split: str = "val", size: str = "native",
                        limit: int = 0, workers: int = 2, device: str = "auto", amp: str = "none",
                        labelid_dir=None, progress: bool = False, photo_change: str | None = None) -> tuple[dict, str]:
    """``{"miou", "per_class", "pixel_acc", "images"}`` (fractions) of a checkpoint on a split, and its table."""
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    from data.base import worker_init_fn
    from data.build import build_dataset
    from data.transforms import MEAN, STD, eval_transform
    from segment.checkpoint import load_checkpoint, model_from_checkpoint
    from segment.errors import UserError
    from segment.normalization import same_normalization
    from segment.sizes import parse_size
    from segment.small_inputs import SizedModel, SmallInputState
    from train.distributed import resolve_device
    from train.engine import autocast, scoring_logits
    from train.metrics import ConfusionMatrix, format_table

    ckpt = load_checkpoint(checkpoint)
    norm = ckpt["normalization"]
    if not same_normalization(norm, MEAN, STD):
        raise UserError(f"{checkpoint} was trained with normalization {norm}, the data pipeline uses "
                        f"mean {MEAN} std {STD}; this evaluator supports only the latter")
    device = resolve_device(device)
    if amp == "fp16" and device.type != "cuda":
        raise UserError("--amp fp16 needs a GPU; on the CPU use --amp bf16 or none")
    run_size = parse_size(size, error=f"size {size!r}: expected native, half, full or HxW such as 512x1024")
    data = build_dataset(name=dataset, root=data_root, split=split,
                         transform=eval_transform(size=run_size, photo_change=photo_change))
    if limit:
        data.files = data.files[:limit]
    space = data.label_space
    if list(ckpt["classes"]) != list(space.classes):
        raise UserError(f"{checkpoint} predicts {len(ckpt['classes'])} classes ({', '.join(ckpt['classes'][:4])}, "
                        f"...) but {dataset} is labelled with {space.num_classes} ({', '.join(space.classes[:4])}, "
                        "...); evaluate it on a dataset of its own label space")
    # Small inputs run with the checkpoint's small-input state, if it has one, as in 'segment predict'.
    sized = SizedModel(model=model_from_checkpoint(ckpt).to(device), small=SmallInputState.from_checkpoint(ckpt))
    small_images = 0
    loader = DataLoader(data, batch_size=1, num_workers=workers, worker_init_fn=worker_init_fn)
    to_labelid = None
    if labelid_dir:
        from data.labels import trainid_to_labelid_lut

        to_labelid = trainid_to_labelid_lut()
        Path(labelid_dir).mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    cm = ConfusionMatrix(num_classes=space.num_classes)
    with torch.inference_mode():
        for i, (image, mask) in enumerate(tqdm(loader, desc="eval", unit="img", disable=not progress, file=sys.stderr)):
            small_images += sized.uses_small(image.shape[-2:])
            with autocast(device, amp):
                logits = sized.for_input(image.shape[-2:])(image.to(device))
            pred = scoring_logits(logits, mask.shape[-2:], run_size).argmax(1).cpu()
            cm.update(pred, mask)
            if to_labelid is not None:
                _write_labelids(Path(labelid_dir), data.files[i][0], to_labelid[pred[0].numpy().astype(np.uint8)])
    summary = cm.summary(classes=space.classes, eval_ids=space.eval_train_ids)
    result = {"miou": summary["miou"], "per_class": summary["per_class"], "pixel_acc": summary["pixel_acc"],
              "images": len(data), "small_input_images": int(small_images)}
    title = (f"{Path(str(checkpoint)).name} on {dataset} {split}, {len(data)} images, size {size}"
             + (f", photos {photo_change}" if photo_change else "")
             + (f", {small_images} with {sized.small.describe()}" if small_images else ""))
    return result, format_table(summary, title=title)


def _write_labelids(out_dir: Path, image_path: Path, labelids) -> None:
    from segment.errors import UserError
    from segment.images import write_png  # atomic (segment.atomic)

    stem = image_path.stem.replace("_leftImg8bit", "")
    path = out_dir / f"{stem}_pred.png"
    try:
        write_png(path, labelids)
    except OSError as exc:
        raise UserError(f"cannot write {path} ({exc.strerror}); check that the folder is writable and has space") from None
