"""CPU latency of models x backends x precisions x sizes x threads, beside a fixed peer: the library of
``segment bench`` (its options and printing are ``segment.commands.bench``; ``collect`` takes those options).

Protocol (docs/design.md, "How speed is measured"): batch 1, warm-up first, then ``--runs`` timed
runs reported as median and p90, for the model alone and for the whole request
(``Predictor.predict``: image in, labels out). Configurations that share a size
and thread count are timed round-robin (run 1 of each, then run 2 of each,
...), so a noisy neighbour slows them all alike and the ratio to the peer
(torchvision ``lraspp_mobilenet_v3_large``, random init, eager fp32, always in
the same run) stays meaningful when absolute times do not.

The same torchvision model also runs as a user deploying it through a fast
engine would (``openvino_peer_configs``): one OpenVINO graph, uint8 image in,
labels out, at fp32 and at bf16 where the CPU has it; ``peer_ratio_ov`` is the
faster of those requests over ours. On by default when OpenVINO is installed
(``--no-peer-openvino`` skips it).
"""

from __future__ import annotations

import importlib.util
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
    # The same torchvision model, deployed through OpenVINO. A model name of its own, so that
    # per-model summaries ('segment report') keep the eager peer's time apart from this one.
    "openvino": "torchvision_lraspp_openvino",
}
PEER_SEED = 0  # the peers' random init: one set of weights for every peer row, and a cacheable export
PEER_GRAPH_VERSION = 1  # part of the OpenVINO peer's cache key: bump when _peer_graph_class's graph changes


@dataclass
class Config:
    """One timed line: a callable for the model alone and one for the request."""

    row: dict  # the JSON fields that describe it (model, backend, precision, ...)
    model_fn: Callable[[], object]
    request_fn: Callable[[], object]


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
    from segment.sizes import MODEL_INPUT_INTERPOLATION, SIZES, plan_run

    if path is None:
        hw = SIZES[size] if isinstance(size, str) else size
        return calibration_images(hw, count=1)[0], plan_run(hw, size)
    photo = read_image(path)
    plan = plan_run(photo.shape[:2], size)
    vh, vw = plan.valid_hw
    # Resized as a request would resize it (segment.sizes.fit_and_pad), ahead of the timing.
    return cv2.resize(photo, (vw, vh), interpolation=MODEL_INPUT_INTERPOLATION), plan


def _peer_model(kind: str):
    """(model, its output's logits): random init from ``PEER_SEED``, the global RNG left as it was.

    The torchvision peer's BN statistics are measured on synthetic street scenes, as a
    preset's are (``Predictor.from_preset``): with the default ones (mean 0, var 1) it
    predicts one class everywhere, and its OpenVINO rows would "agree" with it whatever
    they computed. Eval-mode BN costs the same either way.
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(PEER_SEED)
        if kind == "torchvision":
            from torchvision.models.segmentation import lraspp_mobilenet_v3_large

            from segment.accuracy import calibrate_batchnorm
            from segment.normalization import IMAGENET_MEAN, IMAGENET_STD
            from segment.quantize import calibration_images

            model = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=19)
            # On one thread: the statistics' sums then add up in the same order whatever the thread
            # count, so the weights (and the cached export's key) are the same in every process.
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                calibrate_batchnorm(model, calibration_images((128, 256), count=4), mean=IMAGENET_MEAN,
                                    std=IMAGENET_STD)
            finally:
                torch.set_num_threads(threads)
            return model.eval(), (lambda out: out["out"])
        import segmentation_models_pytorch as smp

        model = smp.DeepLabV3Plus(encoder_name="mobilenet_v2", encoder_weights=None, classes=19)
        return model.eval(), (lambda out: out)


def peer_config(kind: str, size_name: str, size: tuple[int, int], threads: int, image: np.ndarray,
                built: tuple | None = None) -> Config:
    """The peer as its users run it: eager fp32, numpy normalization, full-size logits, argmax.

    ``built``: ``_peer_model(kind)``'s result, to share one model between rows.
    """
    import torch

    from segment.complexity import count_madds, count_params
    from segment.normalization import IMAGENET_MEAN, IMAGENET_STD

    model, output = built or _peer_model(kind)
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


def _peer_graph_class():
    import torch
    from torch import nn

    class PeerGraph(nn.Module):
        """The torchvision peer as one graph: uint8 NHWC image in, uint8 labels (1, H, W) out.

        Normalization as our graph does it (``InferenceGraph._input``: in NHWC, each row one
        (W*3)-long vector against tiled constants, then permuted), the peer's own forward
        with its full-size bilinear resize, and the argmax, all inside the exported graph:
        the fast deployment of that model, nothing left to numpy.
        """

        def __init__(self, model: nn.Module, mean: list[float], std: list[float]) -> None:
            super().__init__()
            self.model = model
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32) * 255.0)
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32) * 255.0)

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            n, h, w, c = image.shape
            mean, std = self.mean.repeat(w), self.std.repeat(w)
            x = ((image.reshape(n, h, w * c).float() - mean) / std).reshape(n, h, w, c).permute(0, 3, 1, 2)
            return self.model(x)["out"].argmax(1).to(torch.uint8)

    return PeerGraph


def openvino_peer_ir(model, size: tuple[int, int], cache_dir: str | Path | None = None) -> Path:
    """The OpenVINO IR of the torchvision peer's graph (``_peer_graph_class``) at ``size``, exported once and cached.

    Cached like our exports: ``<cache>/peer-torchvision_lraspp/<hash of weights>/<H>x<W>/labels.ir/model.xml``.
    """
    import torchvision

    from segment.backends.cache import default_cache_dir, model_key
    from segment.export import export_graph_onnx, onnx_to_openvino
    from segment.normalization import IMAGENET_MEAN, IMAGENET_STD

    graph = _peer_graph_class()(model, list(IMAGENET_MEAN), list(IMAGENET_STD)).eval()
    key = model_key(graph, extra={"peer": PEERS["openvino"], "graph": PEER_GRAPH_VERSION,
                                  "torchvision": torchvision.__version__})
    folder = Path(cache_dir or default_cache_dir()) / f"peer-{PEERS['torchvision']}" / key / f"{size[0]}x{size[1]}"
    xml = folder / "labels.ir" / "model.xml"
    if not xml.exists():
        onnx_path = folder / "labels.onnx"
        if not onnx_path.exists():
            export_graph_onnx(graph, onnx_path, size=tuple(size), names=("image", "labels"))
        xml = onnx_to_openvino(onnx_path, onnx_path.with_suffix(".xml"))
    return xml


def openvino_peer_configs(size_name: str, size: tuple[int, int], threads: int, image: np.ndarray, *,
                          model, cache_dir: str | Path | None = None, reference: np.ndarray | None = None,
                          params: int | None = None, madds: int | None = None) -> list[Config]:
    """The torchvision peer through OpenVINO: fp32 (``INFERENCE_PRECISION_HINT=f32``) and bf16 where the CPU has it.

    Compiled as our OpenVINO backend compiles (one stream, latency hint,
    ``INFERENCE_NUM_THREADS=threads``) and labelled, as it is, by the precision the
    compiled graph's convolutions really run at. The request is the whole graph:
    ``image`` (the padded uint8 image the eager peer gets) in, labels out; the model
    alone is the same infer call without copying the labels out. ``reference``: the
    eager peer's labels, for ``agreement``.
    """
    from segment.backends.openvino_backend import _core, _precision_label
    from segment.complexity import count_madds, count_params

    core = _core()
    ir = core.read_model(str(openvino_peer_ir(model, size, cache_dir)))
    precisions = ["fp32"]
    if "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        precisions.append("bf16")
    x = np.ascontiguousarray(image[None])
    share = {"share_inputs": True, "share_outputs": True}
    configs = []
    for precision in precisions:
        compiled = core.compile_model(ir, "CPU", {"INFERENCE_PRECISION_HINT": {"fp32": "f32", "bf16": "bf16"}[precision],
                                                  "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
                                                  "PERFORMANCE_HINT": "LATENCY"})
        request = compiled.create_infer_request()

        def model_fn(request=request):
            request.infer({0: x}, **share)

        def request_fn(request=request):
            request.infer({0: x}, **share)
            return request.get_output_tensor(0).data[0].copy()

        row = {"model": PEERS["openvino"], "paper_row": None, "backend": "openvino",
               "precision": _precision_label(compiled, precision),
               "params": count_params(model) if params is None else params,
               "madds": count_madds(model, size) if madds is None else madds, "peer": True}
        if reference is not None:
            row["agreement"] = float(np.mean(request_fn() == reference))
        configs.append(Config(row=_with_size(row, size_name, size, threads), model_fn=model_fn, request_fn=request_fn))
    return configs


def _openvino_peer_wanted(args) -> bool:
    """Whether to add the OpenVINO peer rows: by default when OpenVINO is installed."""
    from segment.errors import UserError

    named = "openvino" in args.peer
    if getattr(args, "no_peer_openvino", False):
        if named:
            raise UserError("--peer openvino and --no-peer-openvino contradict each other")
        return False
    if importlib.util.find_spec("openvino") is None:
        if named:
            raise UserError("--peer openvino: OpenVINO is not installed; pip install 'mnv3-lraspp[export]' (or openvino)")
        print("segment bench: skipping the OpenVINO rows of the torchvision peer (no peer_ratio_ov): OpenVINO is "
              "not installed; pip install 'mnv3-lraspp[export]' (or openvino)", file=sys.stderr)
        return False
    return True


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

    int8_settings = _int8_settings(args)
    sizes = [parse_size(s, native=False, minimum=32,
                        error=f"--size {s!r}: use half, full or HxW of at least 32x32 (e.g. 256x512)")
             for s in (args.size or ["half", "full"])]
    all_threads = resolve_threads(None)
    thread_counts = sorted(set(args.threads or [1, all_threads]))
    with_openvino_peer = _openvino_peer_wanted(args)
    subjects = _subjects(args)
    rows: list[dict] = []
    for size in sizes:
        image, plan = bench_input(size, args.image)
        run_hw, name = plan.run_hw, size_name(size)
        # The peers run the same model input as ours: the image, padded as ours is.
        peer_image = fit_and_pad(image, plan, fill=pad_colour(IMAGENET_MEAN))
        peer = _peer_model("torchvision")  # one set of weights for the eager and the OpenVINO rows
        peer_labels = None
        for threads in thread_counts:
            configs: list[Config] = [peer_config("torchvision", name, run_hw, threads, peer_image, built=peer)]
            if with_openvino_peer:
                if peer_labels is None:
                    peer_labels = configs[0].request_fn()
                try:
                    configs += openvino_peer_configs(name, run_hw, threads, peer_image, model=peer[0],
                                                     cache_dir=args.cache_dir, reference=peer_labels,
                                                     params=configs[0].row["params"], madds=configs[0].row["madds"])
                except (RuntimeError, ImportError) as exc:
                    print(f"segment bench: skipping the OpenVINO peer at {name}, {threads} threads: {exc}", file=sys.stderr)
            configs += [peer_config(kind, name, run_hw, threads, peer_image) for kind in args.peer if kind != "openvino"]
            for subject, paper_row, factory in subjects:
                ref_pred = factory(backend="torch", threads=threads)
                reference = ref_pred.reference_labels(image, size)
                madds, params = count_madds(ref_pred.model, run_hw), count_params(ref_pred.model)
                for spec in _specs(args, threads):
                    predictor = factory(backend=spec.backend, precision=spec.precision, threads=threads,
                                        cache_dir=args.cache_dir, calib_data=args.calib_data, compile=spec.compile,
                                        int8_settings=int8_settings)
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
    stages = [{} for _ in configs]  # our rows: the request's stages (Prediction.stages_ms), per stage
    for _ in range(runs):
        for i, cfg in enumerate(configs):
            t0 = time.perf_counter()
            cfg.model_fn()
            model_t[i].append((time.perf_counter() - t0) * 1e3)
            c0, t0 = time.process_time(), time.perf_counter()
            result = cfg.request_fn()
            request_t[i].append((time.perf_counter() - t0) * 1e3)
            request_cpu[i].append((time.process_time() - c0) * 1e3)
            for stage, ms in getattr(result, "stages_ms", {}).items():
                stages[i].setdefault(stage, []).append(ms)
    rows = []
    for cfg, mt, rt, ct, st in zip(configs, model_t, request_t, request_cpu, stages):
        med, p90 = _stats(mt)
        rmed, rp90 = _stats(rt)
        # CPU time of this process (all its threads): waiting for a busy core does not count, so on
        # a shared machine it is the steadier measure of work, most of all at 1 thread.
        rows.append({**cfg.row, "median_ms": round(med, 2), "p90_ms": round(p90, 2),
                     "request_median_ms": round(rmed, 2), "request_p90_ms": round(rp90, 2),
                     "request_cpu_ms": round(float(np.median(ct)), 2), "runs": runs})
        if st:  # where the whole request's time goes, to compare with the demo's own breakdown
            rows[-1]["request_stages_ms"] = {k: round(float(np.median(v)), 2) for k, v in st.items()}
    return rows


def _add_peer_ratios(rows: list[dict]) -> None:
    """peer time / our time, same size and threads, same run (>1: faster than the peer).

    ``peer_ratio*``: the eager torchvision peer. ``peer_ratio_ov``: the faster request of
    the OpenVINO peer rows (``peer_ov_precision`` says which) over ours; ``peer_ratio_ov_cpu``
    the same row's CPU time over ours.
    """
    peers = {(r["size"], r["threads"]): r for r in rows if r["model"] == PEERS["torchvision"]}
    ov_peers: dict[tuple, dict] = {}
    for r in rows:
        if r["model"] == PEERS["openvino"]:
            best = ov_peers.get((r["size"], r["threads"]))
            if best is None or r["request_median_ms"] < best["request_median_ms"]:
                ov_peers[(r["size"], r["threads"])] = r
    for r in rows:
        p = peers.get((r["size"], r["threads"]))
        if p:
            r["peer_ratio"] = round(p["request_median_ms"] / r["request_median_ms"], 2)
            r["peer_ratio_model"] = round(p["median_ms"] / r["median_ms"], 2)
            r["peer_ratio_cpu"] = round(p["request_cpu_ms"] / r["request_cpu_ms"], 2)
        ov = ov_peers.get((r["size"], r["threads"]))
        if ov:
            r["peer_ratio_ov"] = round(ov["request_median_ms"] / r["request_median_ms"], 2)
            r["peer_ratio_ov_cpu"] = round(ov["request_cpu_ms"] / r["request_cpu_ms"], 2)
            r["peer_ov_precision"] = ov["precision"]


def guard_miou(args, subjects, sizes) -> dict:
    """Agreement and mIoU of each backend/precision vs torch fp32 on a labelled set; writes the records ``auto`` reads."""
    import datetime

    from data.build import build_dataset  # lazy: segment does not depend on data at import time

    from segment.accuracy import confusion, mean_iou
    from segment.backends import int8_quantizer
    from segment.predict import cpu_kind, engine_version, save_guard_record
    from segment.sizes import SIZES, plan_run, size_name

    int8_settings = _int8_settings(args)
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
                               calib_data=args.calib_data, int8_settings=int8_settings)
                pred.model = ref.model
                labels = [pred.predict(img, size=size).labels for img, _ in samples]
                conf = sum(confusion(lab_pred, lab, n) for lab_pred, (_, lab) in zip(labels, samples))
                agree = [float(np.mean(a == b)) for a, b in zip(labels, ref_labels)]
                backend = pred.backend_for(run_hw)
                record = {"key": pred.key_for(run_hw), "backend": spec.backend, "precision": spec.precision,
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
                if spec.precision == "int8":  # which int8 model: it stands for no other quantization
                    record["quantizer"] = int8_quantizer(spec.backend, args.calib_data, int8_settings=int8_settings)
                save_guard_record(pred.cache_dir, pred.key_for(run_hw), run_hw, spec.backend, spec.precision, record)
                shipped.append(record)
                out[(name, backend.name, backend.precision, size_name(size))] = record
    if args.guard_out:
        write_guard_file(args.guard_out, shipped)
    return out


def _int8_settings(args):
    """OpenVINO int8's NNCF settings from ``--int8-float`` (None where it is not given: the defaults)."""
    from segment.quantize_nncf import settings_from_groups

    return settings_from_groups(getattr(args, "int8_float", None))


def write_guard_file(path: str, records: list[dict]) -> None:
    """Merge ``records`` into the guard file at ``path`` (one record per backend, precision, size, engine, CPU)."""
    from segment.atomic import write_json
    from segment.predict import read_guard_file

    def ident(r: dict) -> tuple:
        return r.get("key"), r.get("backend"), r.get("precision"), tuple(r.get("size", ())), r.get("engine"), r.get("cpu")

    # A guard file sits beside one checkpoint: records of other weights (an earlier training
    # of it) would never apply again, so they are dropped.
    keys = {r.get("key") for r in records}
    old = read_guard_file(path) if Path(path).exists() else []
    merged = {ident(r): r for r in old if r.get("key") in keys}
    # The dataset's folder on this machine means nothing where the file is shipped.
    merged.update({ident(r): {k: v for k, v in r.items() if k != "root"} for r in records})
    write_json(path, {"about": "argmax agreement with torch fp32 and mIoU per backend and precision on a "
                               "labelled set, written by 'segment bench --guard-data --guard-out'",
                      "records": list(merged.values())})


def format_table(rows: list[dict]) -> str:
    cols = ["model", "backend", "precision", "size", "threads", "median_ms", "p90_ms", "request_median_ms",
            "request_p90_ms", "peer_ratio", "peer_ratio_ov", "request_cpu_ms", "peer_ratio_cpu", "agreement", "miou_drop"]
    heads = ["model", "backend", "prec", "size", "thr", "model ms", "p90", "request ms", "p90", "x peer", "x peer OV",
             "cpu ms", "x peer cpu", "agree", "dmIoU"]
    lines = [[_cell(r.get(c), c) for c in cols] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(heads, *lines)]
    out = ["  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip() for row in [heads, *lines]]
    out.insert(1, "  ".join("-" * w for w in widths))
    out.append("")
    out.append("model ms: the backend's graph alone (ours: to 1/8-resolution logits; peers: their full forward;")
    out.append("the OpenVINO peer: its whole graph, argmax included). request ms: image in, labels out.")
    out.append("x peer: torchvision LR-ASPP (eager fp32) request time / this request time, same size and threads,")
    out.append("timed round-robin in this run. x peer OV: the same for the faster OpenVINO row of that model")
    out.append("(uint8 in, labels out, normalization and argmax in its graph). cpu ms: process CPU time per")
    out.append("request (all threads; robust to waiting on a shared machine). agree: argmax agreement with torch")
    out.append("fp32 (the OpenVINO peer: with the eager peer's labels, same weights).")
    return "\n".join(out)


def _cell(v, column: str = "") -> str:
    if v is None:
        return "-"
    if column == "agreement":
        return f"{v:.4f}"
    if column in ("peer_ratio", "peer_ratio_ov", "peer_ratio_cpu"):
        return f"{v:.2f}"
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)
