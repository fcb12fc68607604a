"""``segment bench``: CPU latency of models x backends x precisions x sizes x threads, beside a fixed peer.

Protocol (docs/design.md, "How speed is measured"): batch 1, warm-up first, then ``--runs`` timed
runs reported as median and p90, for the model alone and for the whole request
(``Predictor.predict``: image in, labels out). Configurations that share a size
and thread count are timed round-robin (run 1 of each, then run 2 of each,
...), so a noisy neighbour slows them all alike and the ratio to the peer
(torchvision ``lraspp_mobilenet_v3_large``, random init, eager fp32, always in
the same run) stays meaningful when absolute times do not.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

PEERS = {
    "torchvision": "torchvision_lraspp",
    "smp": "smp_deeplabv3plus_mobilenetv2",
}


@dataclass
class Config:
    """One timed line: a callable for the model alone and one for the request."""

    row: dict  # the JSON fields that describe it (model, backend, precision, ...)
    model_fn: Callable[[], object]
    request_fn: Callable[[], object]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", action="append", default=[], help="model preset (repeatable; default: 'default')")
    parser.add_argument("--checkpoint", action="append", default=[], help="checkpoint to measure (repeatable)")
    parser.add_argument("--backend", action="append", default=[], choices=["torch", "onnxruntime", "openvino"],
                        help="backend (repeatable; default: every installed one)")
    from segment.backends.base import PRECISIONS

    parser.add_argument("--precision", action="append", default=[], choices=list(PRECISIONS),
                        help="precision (repeatable; default: every one the backend and CPU can run)")
    parser.add_argument("--size", action="append", default=[],
                        help="half, full (pixel budgets: the --image keeps its aspect ratio, in its shape bucket; "
                             "the default synthetic scene is 2:1, so 512x1024 and 1024x2048) or HxW "
                             "(repeatable; default: half and full)")
    parser.add_argument("--threads", action="append", type=int, default=[], help="threads (repeatable; default: 1 and all)")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per configuration (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    parser.add_argument("--peer", action="append", default=[], choices=["smp"],
                        help="add a second peer: smp = segmentation-models-pytorch DeepLabV3+ MobileNetV2 (random init)")
    parser.add_argument("--torch-compile", action="store_true", help="also measure torch fp32 under torch.compile")
    parser.add_argument("--cache-dir", help="where exported models are cached (default ~/.cache/mnv3-lraspp)")
    parser.add_argument("--calib-data", help="folder of dataset images to calibrate int8 (default: synthetic scenes)")
    parser.add_argument("--guard-data", help="labelled set for the mIoU guard (root of a dataset)")
    parser.add_argument("--guard-dataset", default="cityscapes", help="its kind: cityscapes, camvid, folder, synthetic")
    parser.add_argument("--guard-split", default="val")
    parser.add_argument("--guard-limit", type=int, default=20, help="images of the labelled set to use (default 20)")
    parser.add_argument("--guard-out", help="also write the guard records to this JSON file; ship it beside the "
                                            "checkpoint as <checkpoint>.guard.json and 'auto' uses it on other machines "
                                            "with the same engine versions and bf16 hardware")
    parser.add_argument("--image", help="RGB image to time and check agreement on, resized for each size as "
                                        "'segment predict' would (default: a synthetic street scene)")
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of a table")


def _stats(times_ms: list[float]) -> tuple[float, float]:
    return float(np.median(times_ms)), float(np.percentile(times_ms, 90))


def bench_input(size: str | tuple[int, int], path: str | None = None):
    """(image, plan): the image each request gets at ``size``, and the shape the model runs it at.

    Without ``path``: a synthetic street scene of 2:1 (so "half" and "full" run at exactly
    512x1024 and 1024x2048, the paper's inputs) or of the explicit HxW. With a photo: for
    "half"/"full", the photo resized with its own aspect ratio to the part of its shape
    bucket it fills (``segment.sizes``), so a request pads it but resizes nothing, as the
    requests of earlier benchmarks started from an image at the run size; for HxW, the
    photo resized to exactly HxW.
    """
    import cv2

    from segment.images import read_image
    from segment.quantize import calibration_images
    from segment.sizes import SIZES, plan_run

    if path is None:
        hw = SIZES[size] if isinstance(size, str) else size
        return calibration_images(hw, count=1)[0], plan_run(hw, size)
    photo = read_image(path)
    plan = plan_run(photo.shape[:2], size)
    vh, vw = plan.valid_hw
    return cv2.resize(photo, (vw, vh), interpolation=cv2.INTER_AREA if vh * vw < photo.shape[0] * photo.shape[1]
                      else cv2.INTER_LINEAR), plan


def _peer_model(kind: str):
    import torch

    if kind == "torchvision":
        from torchvision.models.segmentation import lraspp_mobilenet_v3_large

        model = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=19)
        return model.eval(), (lambda out: out["out"])
    import segmentation_models_pytorch as smp

    model = smp.DeepLabV3Plus(encoder_name="mobilenet_v2", encoder_weights=None, classes=19)
    return model.eval(), (lambda out: out)


def peer_config(kind: str, size_name: str, size: tuple[int, int], threads: int, image: np.ndarray) -> Config:
    """The peer as its users run it: eager fp32, numpy normalization, full-size logits, argmax."""
    import torch

    from segment.complexity import count_madds, count_params
    from segment.normalization import IMAGENET_MEAN, IMAGENET_STD

    model, output = _peer_model(kind)
    mean = np.array(IMAGENET_MEAN, np.float32) * 255
    std = np.array(IMAGENET_STD, np.float32) * 255
    x = torch.from_numpy(np.ascontiguousarray(((image.astype(np.float32) - mean) / std).transpose(2, 0, 1)[None]))

    def model_fn():
        torch.set_num_threads(threads)
        with torch.inference_mode():
            return output(model(x))

    def request_fn():
        torch.set_num_threads(threads)
        xi = torch.from_numpy(np.ascontiguousarray(((image.astype(np.float32) - mean) / std).transpose(2, 0, 1)[None]))
        with torch.inference_mode():
            return output(model(xi)).argmax(1)[0].to(torch.uint8).numpy()

    row = {"model": PEERS[kind], "paper_row": None, "backend": "torch", "precision": "fp32",
           "params": count_params(model), "madds": count_madds(model, size), "peer": True}
    return Config(row=_with_size(row, size_name, size, threads), model_fn=model_fn, request_fn=request_fn)


def _with_size(row: dict, size_name: str, size: tuple[int, int], threads: int, plan=None) -> dict:
    """``height``/``width``: the shape the model ran at; for "half"/"full" also the bucket and the image in it."""
    row = {**row, "size": size_name, "height": size[0], "width": size[1], "threads": threads}
    if plan is not None and plan.budget:
        row.update(bucket=plan.aspect, valid_height=plan.valid_hw[0], valid_width=plan.valid_hw[1])
    return row


def _subjects(args) -> list[tuple[str, str | None, object]]:
    """(name, paper_row, Predictor factory kwargs) for each model named (default: the default preset)."""
    from segment.errors import UserError
    from segment.predict import Predictor
    from segment.presets import get_preset

    subjects = []
    for name in args.preset or ([] if args.checkpoint else ["default"]):
        try:
            preset = get_preset(name)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        subjects.append((preset.name, preset.paper.row, lambda n=name, **kw: Predictor.from_preset(n, **kw)))
    for path in args.checkpoint:
        base = Predictor.from_checkpoint(path)  # validates the file now, with a clear error
        row = _paper_row_of(base.config)
        subjects.append((base.name, row, lambda p=path, **kw: Predictor.from_checkpoint(p, **kw)))
    return subjects


ARCHITECTURE = ("backbone", "width_mult", "output_stride", "rf2", "head", "head_channels", "num_classes")


def _paper_row_of(config) -> str | None:
    """The paper row (Table 7 first) with this model's architecture (checkpoints store their config).

    Only the table's columns count: a model trained with another crop (hence
    another LR-ASPP pooling window) is still that row's architecture.
    """
    from segment.presets import list_presets

    if config is None:
        return None
    for preset in list_presets():
        if all(getattr(preset.config, f) == getattr(config, f) for f in ARCHITECTURE):
            return preset.paper.row
    return None


def _specs(args, threads: int):
    from segment.backends import BackendSpec, candidate_specs

    specs = [s for s in candidate_specs(threads=threads)
             if (not args.backend or s.backend in args.backend) and (not args.precision or s.precision in args.precision)]
    if args.torch_compile and (not args.backend or "torch" in args.backend):
        specs.append(BackendSpec(backend="torch", precision="fp32", threads=threads, compile=True))
    return specs


def collect(args) -> list[dict]:
    import torch

    from segment.backends import resolve_threads
    from segment.complexity import count_madds, count_params
    from segment.normalization import IMAGENET_MEAN
    from segment.sizes import fit_and_pad, pad_colour, parse_size, size_name

    sizes = [parse_size(s, native=False, minimum=32,
                        error=f"--size {s!r}: use half, full or HxW of at least 32x32 (e.g. 256x512)")
             for s in (args.size or ["half", "full"])]
    all_threads = resolve_threads(None)
    thread_counts = sorted(set(args.threads or [1, all_threads]))
    subjects = _subjects(args)
    rows: list[dict] = []
    for size in sizes:
        image, plan = bench_input(size, args.image)
        run_hw, name = plan.run_hw, size_name(size)
        # The peers run the same model input as ours: the image, padded as ours is.
        peer_image = fit_and_pad(image, plan, fill=pad_colour(IMAGENET_MEAN))
        for threads in thread_counts:
            configs: list[Config] = [peer_config("torchvision", name, run_hw, threads, peer_image)]
            configs += [peer_config(kind, name, run_hw, threads, peer_image) for kind in args.peer]
            for subject, paper_row, factory in subjects:
                ref_pred = factory(backend="torch", threads=threads)
                reference = ref_pred.reference_labels(image, size)
                madds, params = count_madds(ref_pred.model, run_hw), count_params(ref_pred.model)
                for spec in _specs(args, threads):
                    predictor = factory(backend=spec.backend, precision=spec.precision, threads=threads,
                                        cache_dir=args.cache_dir, calib_data=args.calib_data, compile=spec.compile)
                    predictor.model = ref_pred.model  # one set of weights for every line of this model
                    try:
                        backend = predictor.backend_for(run_hw)
                        labels = predictor.predict(image, size=size).labels
                    except Exception as exc:
                        if not getattr(exc, "is_user_error", False) and not isinstance(exc, (RuntimeError, ImportError)):
                            raise
                        print(f"segment bench: skipping {subject} {spec.backend} {spec.precision}: {exc}", file=sys.stderr)
                        continue
                    x = predictor.prepare(image, plan)
                    row = {"model": subject, "paper_row": paper_row,
                           "config": predictor.config.to_dict() if predictor.config is not None else None, "backend": backend.name + ("+compile" if spec.compile else ""),
                           "precision": backend.precision, "params": params, "madds": madds, "peer": False,
                           "agreement": float(np.mean(labels == reference))}
                    configs.append(Config(row=_with_size(row, name, run_hw, threads, plan),
                                          model_fn=lambda b=backend, x=x: b.run(x),
                                          request_fn=lambda p=predictor: p.predict(image, size=size)))
            rows += _time_round_robin(configs, runs=args.runs, warmup=args.warmup)
            torch.set_num_threads(all_threads)
    _add_peer_ratios(rows)
    if args.guard_data:
        rows_guard = guard_miou(args, subjects, sizes)
        for row in rows:
            g = rows_guard.get((row["model"], row["backend"], row["precision"], row["size"]))
            if g:
                row.update(miou_ref=g["miou_ref"], miou=g["miou"], miou_drop=g["miou_drop"],
                           guard_agreement=g["agreement"], guard_agreement_min=g["agreement_min"], guard_images=g["images"])
    return rows


def _time_round_robin(configs: list[Config], *, runs: int, warmup: int) -> list[dict]:
    for cfg in configs:
        for _ in range(warmup):
            cfg.request_fn()
    model_t = [[] for _ in configs]
    request_t = [[] for _ in configs]
    request_cpu = [[] for _ in configs]
    for _ in range(runs):
        for i, cfg in enumerate(configs):
            t0 = time.perf_counter()
            cfg.model_fn()
            model_t[i].append((time.perf_counter() - t0) * 1e3)
            c0, t0 = time.process_time(), time.perf_counter()
            cfg.request_fn()
            request_t[i].append((time.perf_counter() - t0) * 1e3)
            request_cpu[i].append((time.process_time() - c0) * 1e3)
    rows = []
    for cfg, mt, rt, ct in zip(configs, model_t, request_t, request_cpu):
        med, p90 = _stats(mt)
        rmed, rp90 = _stats(rt)
        # CPU time of this process (all its threads): waiting for a busy core does not count, so on
        # a shared machine it is the steadier measure of work, most of all at 1 thread.
        rows.append({**cfg.row, "median_ms": round(med, 2), "p90_ms": round(p90, 2),
                     "request_median_ms": round(rmed, 2), "request_p90_ms": round(rp90, 2),
                     "request_cpu_ms": round(float(np.median(ct)), 2), "runs": runs})
    return rows


def _add_peer_ratios(rows: list[dict]) -> None:
    """peer time / our time, same size and threads, same run (>1: faster than the peer)."""
    peers = {(r["size"], r["threads"]): r for r in rows if r["model"] == PEERS["torchvision"]}
    for r in rows:
        p = peers.get((r["size"], r["threads"]))
        if p:
            r["peer_ratio"] = round(p["request_median_ms"] / r["request_median_ms"], 2)
            r["peer_ratio_model"] = round(p["median_ms"] / r["median_ms"], 2)
            r["peer_ratio_cpu"] = round(p["request_cpu_ms"] / r["request_cpu_ms"], 2)


def guard_miou(args, subjects, sizes) -> dict:
    """Agreement and mIoU of each backend/precision vs torch fp32 on a labelled set; writes the records ``auto`` reads."""
    import datetime

    from data.build import build_dataset  # lazy: segment does not depend on data at import time

    from segment.accuracy import confusion, mean_iou
    from segment.predict import cpu_kind, engine_version, save_guard_record
    from segment.sizes import SIZES, plan_run, size_name

    dataset = build_dataset(name=args.guard_dataset, root=args.guard_data, split=args.guard_split)
    count = min(args.guard_limit, len(dataset))
    picks = np.linspace(0, len(dataset) - 1, count).round().astype(int) if count else []
    samples = [dataset.load(int(i)) for i in picks]
    scored = dataset.label_space.eval_train_ids  # mIoU over the classes 'segment eval' averages
    out, shipped = {}, []
    for name, _, factory in subjects:
        ref = factory(backend="torch")
        n = len(ref.classes)
        for size in sizes:
            # Each photo runs as 'segment predict' runs it: at "half"/"full" in its own shape bucket.
            # The record is filed under the commonest run shape (for a dataset of one aspect ratio,
            # the only one) and names its budget, so 'auto' applies it to the budget's other buckets.
            shapes = Counter(plan_run(img.shape[:2], size).run_hw for img, _ in samples)
            run_hw = shapes.most_common(1)[0][0] if shapes else (SIZES[size] if isinstance(size, str) else size)
            ref_labels = [ref.reference_labels(img, size) for img, _ in samples]
            ref_conf = sum(confusion(r, lab, n) for r, (_, lab) in zip(ref_labels, samples))
            for spec in _specs(args, None):
                pred = factory(backend=spec.backend, precision=spec.precision, cache_dir=args.cache_dir,
                               calib_data=args.calib_data)
                pred.model = ref.model
                labels = [pred.predict(img, size=size).labels for img, _ in samples]
                conf = sum(confusion(lab_pred, lab, n) for lab_pred, (_, lab) in zip(labels, samples))
                agree = [float(np.mean(a == b)) for a, b in zip(labels, ref_labels)]
                backend = pred.backend_for(run_hw)
                record = {"key": pred.key, "backend": spec.backend, "precision": spec.precision,
                          "precision_used": backend.precision, "size": list(run_hw),
                          "budget": size if isinstance(size, str) else None,
                          "shapes": {f"{h}x{w}": k for (h, w), k in shapes.items()},
                          "engine": engine_version(spec.backend), "cpu": cpu_kind(),
                          "dataset": args.guard_dataset, "root": str(args.guard_data), "split": args.guard_split,
                          "images": count, "agreement": round(float(np.mean(agree)), 5) if agree else None,
                          "agreement_min": round(min(agree), 5) if agree else None,
                          "miou_ref": round(100 * mean_iou(ref_conf, scored), 3),
                          "miou": round(100 * mean_iou(conf, scored), 3),
                          "measured_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
                record["miou_drop"] = round(record["miou_ref"] - record["miou"], 3)
                save_guard_record(pred.cache_dir, pred.key, run_hw, spec.backend, spec.precision, record)
                shipped.append(record)
                out[(name, backend.name, backend.precision, size_name(size))] = record
    if args.guard_out:
        write_guard_file(args.guard_out, shipped)
    return out


def write_guard_file(path: str, records: list[dict]) -> None:
    """Merge ``records`` into the guard file at ``path`` (one record per weights, backend, precision, size, engine, CPU)."""
    from segment.atomic import write_json
    from segment.predict import read_guard_file

    def ident(r: dict) -> tuple:
        return r.get("key"), r.get("backend"), r.get("precision"), tuple(r.get("size", ())), r.get("engine"), r.get("cpu")

    merged = {ident(r): r for r in read_guard_file(path)} if Path(path).exists() else {}
    # The dataset's folder on this machine means nothing where the file is shipped.
    merged.update({ident(r): {k: v for k, v in r.items() if k != "root"} for r in records})
    write_json(path, {"about": "argmax agreement with torch fp32 and mIoU per backend and precision on a "
                               "labelled set, written by 'segment bench --guard-data --guard-out'",
                      "records": list(merged.values())})


def format_table(rows: list[dict]) -> str:
    cols = ["model", "backend", "precision", "size", "threads", "median_ms", "p90_ms", "request_median_ms",
            "request_p90_ms", "peer_ratio", "request_cpu_ms", "peer_ratio_cpu", "agreement", "miou_drop"]
    heads = ["model", "backend", "prec", "size", "thr", "model ms", "p90", "request ms", "p90", "x peer", "cpu ms",
             "x peer cpu", "agree", "dmIoU"]
    lines = [[_cell(r.get(c), c) for c in cols] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(heads, *lines)]
    out = ["  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip() for row in [heads, *lines]]
    out.insert(1, "  ".join("-" * w for w in widths))
    out.append("")
    out.append("model ms: the backend's graph alone (ours: to 1/8-resolution logits; peers: their full forward).")
    out.append("request ms: image in, labels out. x peer: torchvision LR-ASPP request time / this request time,")
    out.append("same size and threads, timed round-robin in this run. cpu ms: process CPU time per request (all")
    out.append("threads; robust to waiting on a shared machine). agree: argmax agreement with torch fp32.")
    return "\n".join(out)


def _cell(v, column: str = "") -> str:
    if v is None:
        return "-"
    if column == "agreement":
        return f"{v:.4f}"
    if column in ("peer_ratio", "peer_ratio_cpu"):
        return f"{v:.2f}"
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)


def run(args: argparse.Namespace) -> int:
    from segment.errors import UserError

    if args.runs < 1 or args.warmup < 0:
        raise UserError("--runs must be >= 1 and --warmup >= 0")
    if any(t < 1 for t in args.threads):
        raise UserError("--threads must be >= 1")
    rows = collect(args)
    print(json.dumps(rows, indent=1) if args.json else format_table(rows))
    return 0
