"""The one inference path: CLI, demo and benchmark all call ``Predictor.predict``.

A request is: resize to the run shape (``segment.sizes``: "half" and "full"
are pixel budgets, the photo keeps its aspect ratio inside a shape bucket and
the rest is padded) -> backend (normalization + network to 1/8-resolution
logits, see ``segment.backends.graph``) -> exact bilinear-upsample argmax
(``segment.postprocess``) -> crop of the padding and nearest resize of the
labels back to the image's size. Backends: torch, onnxruntime, openvino, at
fp32 / bf16 / int8; ``backend="auto"`` measures the candidates on this machine
and picks the fastest one whose labels agree with torch fp32 (the accuracy
guard), and records why in ``Predictor.selections``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from segment.backends import Backend, BackendError, BackendSpec, build_backend, candidate_specs, graph_key, resolve_threads
from segment.backends.base import cpu_kind  # noqa: F401  (guard records name the bf16 hardware)
from segment.backends.cache import default_cache_dir, write_json_atomic
from segment.checkpoint import load_checkpoint, model_from_checkpoint
from segment.postprocess import upsample_argmax
from segment.sizes import SIZES, RunPlan, budget_of, buckets, fit_and_pad, pad_colour, plan_run

MIN_AGREEMENT = 0.995  # argmax pixel agreement with torch fp32 a backend needs to be chosen by "auto"
MAX_MIOU_DROP = 0.5  # mIoU points; int8 is offered only with a guard record under this, any precision fails above it
MAX_INT8_MIOU_DROP = MAX_MIOU_DROP  # the int8 rule: offered only below this mIoU drop

log = logging.getLogger("segment.predict")


@dataclass
class Prediction:
    labels: np.ndarray  # (H, W) uint8 class indices (train ids) at the input image's size
    model_ms: float  # the model alone (the backend's graph: normalization + network)
    total_ms: float  # resize + model + upsample/argmax + resize back
    backend: str  # backend really used ("torch", "onnxruntime", "openvino")
    precision: str  # precision really used ("fp32", "bf16", "int8")
    input_size: tuple[int, int]  # (H, W) the model ran at (for "half"/"full": the shape bucket)
    valid_size: tuple[int, int] | None = None  # (H, W) of the image inside input_size (top-left; the rest padding)
    size: str | None = None  # the size asked for: "half", "full", "native" or "HxW"
    bucket: str | None = None  # the aspect-ratio bucket ("4:3") for "half"/"full"

    def __post_init__(self) -> None:
        if self.valid_size is None:
            self.valid_size = tuple(self.input_size)

    def describe_size(self) -> str:
        """'608x832 (half, 4:3 bucket; image 608x811 + padding)': the size the model ran at, in words."""
        return RunPlan(run_hw=tuple(self.input_size), valid_hw=tuple(self.valid_size),
                       budget=self.size if self.bucket else None, aspect=self.bucket).describe()


@dataclass
class Selection:
    """Why ``backend="auto"`` chose what it chose, for one input size."""

    backend: str
    precision: str
    size: tuple[int, int]
    threads: int
    candidates: list[dict] = field(default_factory=list)  # backend, precision, agreement, ms, chosen/skipped reason
    cached: bool = False  # True: read from an earlier measurement on this machine
    reused_from: tuple[int, int] | None = None  # the budget's 2:1 shape whose choice this bucket reuses


class Predictor:
    def __init__(self, *, model: torch.nn.Module, classes: list[str], palette: list[list[int]],
                 mean: list[float], std: list[float], name: str = "model", backend: str = "torch",
                 precision: str = "fp32", threads: int | None = None, cache_dir: str | Path | None = None,
                 calib_data: str | Path | None = None, compile: bool = False, channels_last: bool = True,
                 min_agreement: float = MIN_AGREEMENT, config=None, guard_file: str | Path | None = None) -> None:
        self.model = model.eval()
        self.config = config  # ModelConfig when known (checkpoint or preset): the benchmark's paper row
        self.classes = list(classes)
        self.palette = np.asarray(palette, dtype=np.uint8)
        self.mean_unit, self.std_unit = list(map(float, mean)), list(map(float, std))
        self.mean = np.asarray(mean, dtype=np.float32) * 255.0
        self.std = np.asarray(std, dtype=np.float32) * 255.0
        self.name = name
        self.backend = backend  # requested; each Prediction says what really ran
        self.precision = precision
        self.threads = resolve_threads(threads)
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.calib_data = calib_data
        self.compile = compile
        self.channels_last = channels_last
        self.min_agreement = min_agreement
        self.guard_file = Path(guard_file) if guard_file else None  # shipped labelled-set guard records, if any
        self._shipped_records: list[dict] | None = None  # read once, on first use
        self.selections: dict[tuple[int, int], Selection] = {}
        self._backends: dict[tuple[int, int], Backend] = {}
        self._key: str | None = None

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, *, backend: str = "torch", precision: str = "fp32",
                        threads: int | None = None, cache_dir: str | Path | None = None,
                        calib_data: str | Path | None = None, compile: bool = False, **kwargs) -> "Predictor":
        """``backend``: "torch" | "onnxruntime" | "openvino" | "auto" (fastest that passes the accuracy guard)."""
        kwargs.update(backend=backend, precision=precision, threads=threads, cache_dir=cache_dir,
                      calib_data=calib_data, compile=compile)
        if path is None:
            from segment.bundled import default_checkpoint

            path = default_checkpoint()
        from segment.config import ModelConfig

        ckpt = load_checkpoint(path)
        norm = ckpt["normalization"]
        guard_file = guard_file_for(path)
        return cls(model=model_from_checkpoint(ckpt), classes=ckpt["classes"], palette=ckpt["palette"],
                   mean=norm["mean"], std=norm["std"], name=Path(path).stem,
                   config=ModelConfig.from_dict(ckpt["model_config"]),
                   guard_file=guard_file if guard_file.is_file() else None, **kwargs)

    @classmethod
    def from_preset(cls, name: str, *, calibrate_bn: bool = True, **kwargs) -> "Predictor":
        """A randomly initialised preset, for speed measurements: its labels mean nothing.

        ``calibrate_bn``: measure BN statistics on a few synthetic street scenes, so the
        labels vary across the image and the accuracy guard compares something.
        """
        from segment.accuracy import calibrate_batchnorm
        from segment.model import build_model
        from segment.normalization import IMAGENET_MEAN, IMAGENET_STD
        from segment.presets import get_preset
        from segment.quantize import calibration_images

        preset = get_preset(name)
        n = preset.config.num_classes
        mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
        model = build_model(preset.config)
        if calibrate_bn:
            calibrate_batchnorm(model, calibration_images((128, 256), count=4), mean=mean, std=std)
        return cls(model=model, classes=[f"class{i}" for i in range(n)],
                   palette=[[(37 * i) % 256, (91 * i) % 256, (173 * i) % 256] for i in range(n)],
                   mean=mean, std=std, name=preset.name, config=preset.config, **kwargs)

    # -- sizes and backends -------------------------------------------------------------------

    @staticmethod
    def plan(image_hw: tuple[int, int], size: str | tuple[int, int]) -> RunPlan:
        """The shape an image runs at (``segment.sizes.plan_run``: budgets, buckets, native, exact HxW)."""
        return plan_run(image_hw, size)

    @property
    def key(self) -> str:
        if self._key is None:
            self._key = graph_key(self.model, mean=self.mean_unit, std=self.std_unit)
        return self._key

    def build(self, spec: BackendSpec, size: tuple[int, int]) -> Backend:
        return build_backend(self.model, mean=self.mean_unit, std=self.std_unit, size=size, spec=spec,
                             cache_dir=self.cache_dir, calib_data=self.calib_data)

    def backend_for(self, size: tuple[int, int]) -> Backend:
        size = tuple(size)
        if size not in self._backends:
            if self.backend == "auto":
                budget = budget_of(size)
                primary = SIZES[budget] if budget else size
                self._backends[size] = self._select(size) if primary == size else self._select_like(size, primary)
            else:
                spec = BackendSpec(backend=self.backend, precision=self.precision, threads=self.threads,
                                   compile=self.compile, channels_last=self.channels_last)
                self._backends[size] = self.build(spec, size)
        return self._backends[size]

    # -- the request ----------------------------------------------------------------------------

    def prepare(self, image: np.ndarray, plan: RunPlan | tuple[int, int]) -> np.ndarray:
        """The backend's input (1, H, W, 3) uint8: ``image`` resized (and padded) as ``plan`` says.

        ``plan``: a RunPlan, or an (H, W) to resize to exactly.
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise BackendError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
        if not isinstance(plan, RunPlan):
            plan = RunPlan(run_hw=tuple(plan), valid_hw=tuple(plan))
        x = fit_and_pad(image, plan, fill=pad_colour(self.mean_unit), interpolation=cv2.INTER_LINEAR)
        return x[None]

    @staticmethod
    def restore(labels: np.ndarray, plan: RunPlan, image_hw: tuple[int, int]) -> np.ndarray:
        """Labels at the run shape -> the image's own size: crop the padding, nearest resize."""
        vh, vw = plan.valid_hw
        if labels.shape != (vh, vw):
            labels = labels[:vh, :vw]
        h, w = image_hw
        if labels.shape != (h, w):
            labels = cv2.resize(np.ascontiguousarray(labels), (w, h), interpolation=cv2.INTER_NEAREST)
        return labels

    def predict(self, image: np.ndarray, *, size: str | tuple[int, int] = "half") -> Prediction:
        """Segment one RGB uint8 image (H, W, 3); ``size`` is "half", "full", "native" or (H, W).

        "half" and "full" are pixel budgets (512*1024, 1024*2048): the image keeps its aspect
        ratio (``segment.sizes``). The labels always come back at the image's own size.
        """
        start = time.perf_counter()
        h, w = image.shape[:2]
        plan = self.plan((h, w), size)
        backend = self.backend_for(plan.run_hw)
        x = self.prepare(image, plan)
        t0 = time.perf_counter()
        logits = backend.run(x)
        model_ms = (time.perf_counter() - t0) * 1e3
        labels = self.restore(upsample_argmax(logits, plan.run_hw), plan, (h, w))
        return Prediction(labels=labels, model_ms=model_ms, total_ms=(time.perf_counter() - start) * 1e3,
                          backend=backend.name, precision=backend.precision, input_size=plan.run_hw,
                          valid_size=plan.valid_hw, size=size if isinstance(size, str) else f"{size[0]}x{size[1]}",
                          bucket=plan.aspect)

    def reference_labels(self, image: np.ndarray, size: str | tuple[int, int] = "native") -> np.ndarray:
        """The accuracy guard's reference: plain torch fp32 eager, the model's own full-size resize, argmax."""
        h, w = image.shape[:2]
        plan = self.plan((h, w), size)
        x = self.prepare(image, plan)[0]
        x = ((x.astype(np.float32) - self.mean) / self.std).transpose(2, 0, 1)[None]
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            labels = self.model(torch.from_numpy(np.ascontiguousarray(x))).argmax(1)[0].to(torch.uint8).numpy()
        return self.restore(labels, plan, (h, w))

    # -- backend="auto" --------------------------------------------------------------------------

    def guard_images(self, size: tuple[int, int], count: int = 2) -> list[np.ndarray]:
        from segment.quantize import calibration_images

        return calibration_images(size, folder=self.calib_data, count=count) if self.calib_data else \
            calibration_images(size, count=count)

    def guard_record(self, spec: BackendSpec, size: tuple[int, int]) -> dict | None:
        """The labelled-set guard result for this backend, precision and size, if one applies here.

        Written by ``segment bench --guard-data`` into the cache, or shipped beside a
        checkpoint as ``<checkpoint>.guard.json`` (``segment bench --guard-out``). A
        record applies only to these weights, the same engine version and the same
        kind of bf16 hardware: bf16 rounding differs between engines and CPUs.
        A record measured at another bucket of the same pixel budget applies where
        none was measured at this shape.
        """
        size = tuple(size)
        budget = budget_of(size)
        # A record applies at its own shape and, where none was measured at this shape, to the
        # other buckets of its pixel budget: bf16 rounding depends on the weights and the pixels,
        # not on the aspect ratio (the 2:1 shape's record first, the paper's own input).
        shapes = [size] + ([s for s in buckets(budget).values() if s != size] if budget else [])
        candidates = []
        for shape in shapes:
            try:
                candidates.append(json.loads(guard_record_path(self.cache_dir, self.key, shape, spec.backend,
                                                               spec.precision).read_text()))
            except (OSError, ValueError):
                pass
        if self.guard_file is not None:
            if self._shipped_records is None:
                self._shipped_records = read_guard_file(self.guard_file)
            candidates += self._shipped_records
        applicable = [rec for rec in candidates
                      if rec.get("key", self.key) == self.key
                      and rec.get("backend", spec.backend) == spec.backend
                      and rec.get("precision", spec.precision) == spec.precision
                      and rec.get("engine") == engine_version(spec.backend) and rec.get("cpu") == cpu_kind()]
        for rec in applicable:
            if tuple(rec.get("size", ())) == size:
                return rec
        if budget is not None:
            same = [rec for rec in applicable if (rec.get("budget") or budget_of(tuple(rec.get("size", ())))) == budget]
            same.sort(key=lambda rec: tuple(rec.get("size", ())) != SIZES[budget])
            if same:
                return same[0]
        return None

    def _guard_fingerprint(self, size: tuple[int, int]) -> str:
        """A hash of every guard record that applies at ``size``: a new record re-opens the auto choice."""
        recs = [self.guard_record(spec, size) for spec in candidate_specs(threads=self.threads)]
        return hashlib.sha256(json.dumps(recs, sort_keys=True).encode()).hexdigest()[:12]

    def _selection_path(self, size: tuple[int, int]) -> Path:
        # Keyed by the engines' versions too: an upgrade re-measures.
        import importlib.metadata as md

        versions = []
        for dist in ("torch", "onnxruntime", "openvino"):
            try:
                versions.append(f"{dist}{md.version(dist)}")
            except md.PackageNotFoundError:
                versions.append(f"{dist}-none")
        tag = hashlib.sha256("|".join(versions).encode()).hexdigest()[:8]
        return self.cache_dir / self.key / f"{size[0]}x{size[1]}" / f"auto-{self.threads}threads-{tag}.json"

    def _saved_selection(self, size: tuple[int, int]) -> dict | None:
        """The choice an earlier run measured at ``size`` on this machine, if its guard records have not changed."""
        try:
            saved = json.loads(self._selection_path(size).read_text())
        except (OSError, ValueError):  # no file or unreadable: measure again
            return None
        if not isinstance(saved, dict) or "backend" not in saved or "requested_precision" not in saved:
            return None
        return saved if saved.get("guard_records") == self._guard_fingerprint(size) else None

    def _cached_selection(self, size: tuple[int, int]) -> Backend | None:
        """The backend an earlier run chose at ``size``, built; None to measure again."""
        saved = self._saved_selection(size)
        if saved is None:
            return None
        try:
            spec = BackendSpec(backend=saved["backend"], precision=saved["requested_precision"], threads=self.threads)
            backend = self.build(spec, size)
        except Exception:  # the backend no longer builds: measure again
            return None
        self.selections[size] = Selection(backend=backend.name, precision=backend.precision, size=size,
                                          threads=self.threads, candidates=saved.get("candidates", []), cached=True)
        log.info("auto backend at %dx%d: %s %s (measured earlier: %s)", size[0], size[1], backend.name,
                 backend.precision, self._selection_path(size))
        return backend

    def _select_like(self, size: tuple[int, int], primary: tuple[int, int]) -> Backend:
        """A bucket of a pixel budget: reuse the choice made at the budget's 2:1 shape ``primary``.

        Relative speeds depend on the pixel count, not on the aspect ratio, so the
        candidates that passed there are taken fastest first, without measuring
        again; one whose guard record at this shape fails is passed over, and one
        that does not build here is skipped. Only if none is left is this shape
        measured on its own.
        """
        if primary in self.selections:
            sel = self.selections[primary]
            candidates, cached = sel.candidates, sel.cached
        else:
            saved = self._saved_selection(primary)
            if saved is None:  # never measured: measure the budget once, at its own shape
                self.backend_for(primary)
                sel = self.selections[primary]
                candidates, cached = sel.candidates, sel.cached
            else:
                candidates, cached = saved.get("candidates", []), True
                for row in candidates:  # files written before rows kept the precision asked for
                    if row.get("chosen") and "requested_precision" not in row:
                        row["requested_precision"] = saved["requested_precision"]
        ranked = sorted((row for row in candidates if not row.get("skipped") and "request_ms" in row),
                        key=lambda row: row["request_ms"])
        report = []
        for row in ranked:
            spec = BackendSpec(backend=row["backend"], precision=row.get("requested_precision", row["precision"]),
                               threads=self.threads)
            here = {"backend": spec.backend, "precision": spec.precision,
                    "at_budget_shape": {k: row[k] for k in ("request_ms", "agreement", "guard") if k in row}}
            report.append(here)
            rec = self.guard_record(spec, size)
            if (rec is not None and "agreement" in rec and tuple(rec.get("size", ())) == tuple(size)
                    and (rec["agreement"] < self.min_agreement or rec.get("miou_drop", 0.0) >= MAX_MIOU_DROP)):
                here["skipped"] = f"labelled-set guard at {size[0]}x{size[1]}: agreement {rec['agreement']:.4f}, " \
                                  f"mIoU drop {rec.get('miou_drop', 0.0):+.2f}"
                continue
            try:
                backend = self.build(spec, size)
            except Exception as exc:
                here["skipped"] = f"{type(exc).__name__}: {exc}"
                continue
            here["chosen"] = True
            self.selections[size] = Selection(backend=backend.name, precision=backend.precision, size=size,
                                              threads=self.threads, candidates=report, cached=cached,
                                              reused_from=tuple(primary))
            log.info("auto backend at %dx%d: %s %s (the choice at %dx%d, same pixel budget)", size[0], size[1],
                     backend.name, backend.precision, primary[0], primary[1])
            return backend
        return self._select(size)

    def _select(self, size: tuple[int, int]) -> Backend:
        cached = self._cached_selection(size)
        if cached is not None:
            return cached
        images = self.guard_images(size)
        refs: list[np.ndarray] = []  # torch fp32 labels of the guard images, computed only if a candidate needs them
        best: tuple[float, Backend] | None = None
        report = []
        for spec in candidate_specs(threads=self.threads):
            row = {"backend": spec.backend, "precision": spec.precision}
            report.append(row)
            rec = self.guard_record(spec, size)
            if rec is not None and "agreement" in rec:
                # Photos with labels beat synthetic scenes, both ways: a model trained on real
                # streets has small margins on synthetic ones, and the record is the evidence.
                # A failing record rules the candidate out before it is built (int8's calibration
                # alone took 19 s at 1024x2048).
                row["guard"] = (f"{rec['images']} images of {rec['dataset']} {rec['split']}: agreement "
                                f"{rec['agreement']:.4f}, mIoU drop {rec['miou_drop']:+.2f}")
                if rec["agreement"] < self.min_agreement or rec["miou_drop"] >= MAX_MIOU_DROP:
                    row["skipped"] = f"labelled-set guard: {row['guard']}"
                    continue
            if spec.precision == "int8" and (rec is None or rec.get("miou_drop", 1e9) >= MAX_MIOU_DROP):
                row["skipped"] = ("no mIoU guard record (run 'segment bench --guard-data')" if rec is None
                                  else f"mIoU drop {rec['miou_drop']:.2f} >= {MAX_MIOU_DROP}")
                continue
            try:
                backend = self.build(spec, size)
                ms = _median_ms(lambda: self._labels(backend, images[0], size), runs=3)
                if "guard" not in row:
                    refs = refs or [self.reference_labels(img) for img in images]
                    agree = float(np.mean([np.mean(self._labels(backend, img, size) == ref)
                                           for img, ref in zip(images, refs)]))
            except Exception as exc:  # a backend that cannot run here is skipped, with the reason kept
                row["skipped"] = f"{type(exc).__name__}: {exc}"
                continue
            row.update(precision=backend.precision, requested_precision=spec.precision, request_ms=ms)
            if "guard" in row:
                row["agreement"] = rec["agreement"]
            else:
                row.update(agreement=agree, guard=f"{len(images)} guard images "
                                                  f"({'calib_data' if self.calib_data else 'synthetic scenes'})")
                if agree < self.min_agreement:
                    row["skipped"] = f"agreement {agree:.4f} < {self.min_agreement}"
                    continue
            if best is None or ms < best[0]:
                best = (ms, backend, spec)
        if best is None:
            raise BackendError(f"no backend passed the accuracy guard at {size}: {report}")
        chosen, chosen_spec = best[1], best[2]
        for row in report:
            row["chosen"] = row.get("skipped") is None and row["backend"] == chosen.name and row["precision"] == chosen.precision
        self.selections[size] = Selection(backend=chosen.name, precision=chosen.precision, size=size,
                                          threads=self.threads, candidates=report)
        log.info("auto backend at %dx%d: %s %s (%.1f ms per request)", size[0], size[1], chosen.name,
                 chosen.precision, best[0])
        try:
            write_json_atomic(self._selection_path(size), {"backend": chosen.name, "precision": chosen.precision,
                                                           "requested_precision": chosen_spec.precision,
                                                           "guard_records": self._guard_fingerprint(size),
                                                           "candidates": report})
        except OSError as exc:  # a read-only cache only costs a re-measurement next time
            log.warning("could not save the auto choice: %s", exc)
        return chosen

    def _labels(self, backend: Backend, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return upsample_argmax(backend.run(image[None]), size)


def guard_file_for(checkpoint: str | Path) -> Path:
    """Where a checkpoint's shipped guard records live: ``model.pt`` -> ``model.guard.json``."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + ".guard.json")


def read_guard_file(path: str | Path) -> list[dict]:
    try:
        return list(json.loads(Path(path).read_text()).get("records", []))
    except (OSError, ValueError, AttributeError) as exc:
        log.warning("ignoring unreadable guard records %s: %s", path, exc)
        return []


def engine_version(backend: str) -> str:
    """The version of the package that runs ``backend`` (part of what a guard record applies to)."""
    import importlib.metadata as md

    try:
        return f"{backend} {md.version(backend)}"
    except md.PackageNotFoundError:
        return f"{backend} none"


def guard_record_path(cache_dir: Path, key: str, size: tuple[int, int], backend: str, precision: str) -> Path:
    return Path(cache_dir) / key / f"{size[0]}x{size[1]}" / f"guard-{backend}-{precision}.json"


def save_guard_record(cache_dir: Path, key: str, size: tuple[int, int], backend: str, precision: str, record: dict) -> Path:
    path = guard_record_path(cache_dir, key, size, backend, precision)
    write_json_atomic(path, record)
    return path


def _median_ms(fn, *, runs: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))
