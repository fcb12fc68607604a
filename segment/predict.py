"""The one inference path: CLI, demo and benchmark all call ``Predictor.predict``.

A request is: resize to the run shape (``segment.sizes``: "half" and "full"
fit the photo inside the paper's 512x1024 / 1024x2048 with its aspect ratio, in
a shape bucket, and the rest is padded) -> backend (normalization + network to
1/8-resolution logits, see ``segment.backends.graph``) -> exact bilinear-upsample argmax
(``segment.postprocess``) -> crop of the padding and nearest resize of the
labels back to the image's size. Backends: torch, onnxruntime, openvino, at
fp32 / bf16 / int8; ``backend="auto"`` measures the candidates on this machine
(interleaved rounds, ``segment.autoselect``) and picks the fastest one whose
labels agree with torch fp32 (the accuracy guard), records why in
``Predictor.selections``, keeps timing it on real requests and measures again
when it serves much slower than another candidate measured.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from segment.autoselect import WORK_LOCK, AutoConfig, LiveMonitor, Measurement, measure_interleaved, utc_now
from segment.accuracy import MAX_MIOU_DROP, guard_passes
from segment.backends import (Backend, BackendError, BackendSpec, available_backends, build_backend, candidate_specs,
                              graph_key, int8_quantizer, resolve_threads)
from segment.backends.base import cpu_kind  # noqa: F401  (guard records name the CPU kind)
from segment.backends.cache import default_cache_dir, write_json_atomic
from segment.checkpoint import load_checkpoint, model_from_checkpoint
from segment.postprocess import upsample_argmax
from segment.sizes import SIZES, RunPlan, budget_of, buckets, fit_and_pad, pad_colour, plan_run
from segment.small_inputs import SizedModel, SmallInputState

MIN_AGREEMENT = 0.995  # argmax pixel agreement with torch fp32 a backend needs to be chosen by "auto"
MAX_INT8_MIOU_DROP = MAX_MIOU_DROP  # the int8 rule: offered only below this mIoU drop (segment.accuracy.guard_passes)
HISTORY_KEPT = 20  # events (measurements, switches) kept in a size's auto file

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
    small_input: str = ""  # the small-input state it ran with, described (segment.small_inputs); "" if none
    # Where total_ms went: "resize" (fit and pad to the run shape), "model", "upsample_argmax",
    # "restore" (labels back to the image's size), "other" (choosing the backend, ...).
    stages_ms: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.valid_size is None:
            self.valid_size = tuple(self.input_size)

    def describe_size(self) -> str:
        """'512x704 (half, 4:3 bucket; image 512x683 + padding)': the size the model ran at, in words."""
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
    reason: str = ""  # "first measurement", "forced", "re-check switch", "re-check kept"
    chosen_utc: str | None = None  # when that measurement was made
    rounds: int | None = None  # interleaved rounds it took
    history: list[dict] = field(default_factory=list)  # earlier events at this size, oldest first


@dataclass
class ServingState:
    """What serves one run shape right now, for a status line."""

    backend: str
    precision: str
    how: str  # "fixed", "default", "measured", "remembered", "switched", "not built"
    measuring: bool  # a measurement for this shape's pixel budget is queued or running
    reason: str = ""  # the selection's reason and time, when auto chose

    def describe(self) -> str:
        text = f"{self.backend} {self.precision}"
        if self.how == "default":
            return text + (" (default; the candidates are being measured in the background and the fastest "
                           "takes over)" if self.measuring else " (default until auto measures the candidates)")
        if self.how in ("measured", "remembered", "switched"):
            text += f" (chosen by auto: {self.reason})"
        return text + ("; measuring again in the background" if self.measuring else "")


class Predictor:
    def __init__(self, *, model: torch.nn.Module, classes: list[str], palette: list[list[int]],
                 mean: list[float], std: list[float], name: str = "model", backend: str = "torch",
                 precision: str = "fp32", threads: int | None = None, cache_dir: str | Path | None = None,
                 calib_data: str | Path | None = None, compile: bool = False, channels_last: bool = True,
                 min_agreement: float = MIN_AGREEMENT, config=None, guard_file: str | Path | None = None,
                 auto: AutoConfig | None = None, int8_settings=None,
                 small_inputs: SmallInputState | None = None) -> None:
        # The model, and for small run shapes its copy with the small-input state (segment.small_inputs).
        self.sized = SizedModel(model=model.eval(), small=small_inputs)
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
        self.int8_settings = int8_settings  # OpenVINO int8: segment.quantize_nncf.Int8Settings (None: its defaults)
        self.compile = compile
        self.channels_last = channels_last
        self.min_agreement = min_agreement
        self.guard_file = Path(guard_file) if guard_file else None  # shipped labelled-set guard records, if any
        self._shipped_records: list[dict] | None = None  # read once, on first use
        self.selections: dict[tuple[int, int], Selection] = {}
        self._backends: dict[tuple[int, int], Backend] = {}  # what serves each run shape now
        self._keys: dict[int, tuple[torch.nn.Module, str]] = {}  # graph key per model, by id
        self.auto = auto or AutoConfig()
        # Builds, selections and swaps of self._backends; never held while timing.
        self._lock = threading.RLock()
        self._monitors: dict[tuple[int, int], LiveMonitor] = {}  # per budget's primary shape
        # The monitors' own lock: every request updates one, and must not wait for a build under self._lock.
        self._stats_lock = threading.Lock()
        self._defaults: set[tuple[int, int]] = set()  # run shapes served by the default until a choice is made
        self._pending: set[tuple[int, int]] = set()  # primaries waiting for a selection (after_first)
        self._queued: set[tuple[int, int]] = set()  # primaries with background work queued or running
        self._forced: set[tuple[int, int]] = set()  # primaries already measured again for auto.reselect
        self._jobs: deque = deque()
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self.listeners: list = []  # callables taking one line: told when auto chooses or switches

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
                   small_inputs=SmallInputState.from_checkpoint(ckpt),
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
    def model(self) -> torch.nn.Module:
        return self.sized.model

    @model.setter
    def model(self, model: torch.nn.Module) -> None:
        self.sized.model = model

    def model_for(self, size: tuple[int, int]) -> torch.nn.Module:
        """The model a run shape uses: small shapes get the small-input state, if the checkpoint has one."""
        return self.sized.for_input(tuple(size))

    @property
    def key(self) -> str:
        """The model's graph key (exports, guard records and auto's choices are filed under it)."""
        return self._key_of(self.model)

    def key_for(self, size: tuple[int, int]) -> str:
        """The graph key of the model ``size`` runs (another one for small shapes with a small-input state)."""
        return self._key_of(self.model_for(size))

    def _key_of(self, model: torch.nn.Module) -> str:
        known = self._keys.get(id(model))
        if known is None or known[0] is not model:
            known = (model, graph_key(model, mean=self.mean_unit, std=self.std_unit))
            self._keys[id(model)] = known
        return known[1]

    def build(self, spec: BackendSpec, size: tuple[int, int]) -> Backend:
        with WORK_LOCK:  # not beside a measurement, nor another export (segment.autoselect)
            return build_backend(self.model_for(size), mean=self.mean_unit, std=self.std_unit, size=size, spec=spec,
                                 cache_dir=self.cache_dir, calib_data=self.calib_data,
                                 int8_settings=self.int8_settings)

    def backend_for(self, size: tuple[int, int]) -> Backend:
        """What serves ``size`` now (built, and for "auto" chosen or defaulted, on first use)."""
        size = tuple(size)
        backend = self._backends.get(size)
        if backend is not None:
            return backend
        with self._lock:  # one thread builds a shape; the others wait for it
            if size not in self._backends:
                if self.backend == "auto":
                    self._backends[size] = self._auto_backend(size)
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
        x = fit_and_pad(image, plan, fill=pad_colour(self.mean_unit))
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

    def predict(self, image: np.ndarray, *, size: str | tuple[int, int] = "half",
                output_hw: tuple[int, int] | None = None) -> Prediction:
        """Segment one RGB uint8 image (H, W, 3); ``size`` is "half", "full", "native" or (H, W).

        "half" and "full" fit the image inside the paper's 512x1024 / 1024x2048, keeping its
        aspect ratio (``segment.sizes``). The labels come back at the image's own size, or at
        ``output_hw`` (the photo's own size when ``image`` was decoded reduced, as
        ``segment.images.read_photo(needed_side=...)`` does).
        """
        start = time.perf_counter()
        h, w = image.shape[:2]
        plan = self.plan((h, w), size)
        if self._pending:
            self._select_pending(plan.run_hw)
        # A local reference: a swap by a background selection leaves this request on its backend.
        backend = self.backend_for(plan.run_hw)
        t_resize = time.perf_counter()
        x = self.prepare(image, plan)
        t0, c0 = time.perf_counter(), self.auto.clock()
        logits = backend.run(x)
        t1 = time.perf_counter()
        labels = upsample_argmax(logits, plan.run_hw)
        t2 = time.perf_counter()
        # What auto measured per candidate (the backend and the upsample-argmax of its logits).
        self._observe(plan.run_hw, backend, (self.auto.clock() - c0) * 1e3)
        t3 = time.perf_counter()
        labels = self.restore(labels, plan, output_hw or (h, w))
        end = time.perf_counter()
        stages = {"resize": t0 - t_resize, "model": t1 - t0, "upsample_argmax": t2 - t1, "restore": end - t3}
        stages["other"] = (end - start) - sum(stages.values())
        stages_ms = {k: v * 1e3 for k, v in stages.items()}
        return Prediction(labels=labels, model_ms=stages_ms["model"], total_ms=(end - start) * 1e3, stages_ms=stages_ms,
                          backend=backend.name, precision=backend.precision, input_size=plan.run_hw,
                          valid_size=plan.valid_hw, size=size if isinstance(size, str) else f"{size[0]}x{size[1]}",
                          bucket=plan.aspect, small_input=self.sized.describe(plan.run_hw))

    def reference_labels(self, image: np.ndarray, size: str | tuple[int, int] = "native") -> np.ndarray:
        """The accuracy guard's reference: plain torch fp32 eager, the model's own full-size resize, argmax."""
        h, w = image.shape[:2]
        plan = self.plan((h, w), size)
        x = self.prepare(image, plan)[0]
        x = ((x.astype(np.float32) - self.mean) / self.std).transpose(2, 0, 1)[None]
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            logits = self.model_for(plan.run_hw)(torch.from_numpy(np.ascontiguousarray(x)))
            labels = logits.argmax(1)[0].to(torch.uint8).numpy()
        return self.restore(labels, plan, (h, w))

    # -- backend="auto" --------------------------------------------------------------------------

    def guard_images(self, size: tuple[int, int], count: int = 2) -> list[np.ndarray]:
        """Photos for auto's agreement check where no guard record applies, and for its timing:
        ``calib_data``'s, else the bundled street photos, each filling ``size``. A model trained
        on real streets has small margins on synthetic scenes: on them the bundled large model's
        mixed precision agreed 99.41% at full, on 101 CamVid photos 99.81%."""
        from segment.quantize import calibration_folder, calibration_images

        return calibration_images(size, folder=calibration_folder(self.calib_data), count=count, cover=True)

    def guard_record(self, spec: BackendSpec, size: tuple[int, int]) -> dict | None:
        """The labelled-set guard result for this backend, precision and size, if one applies here.

        Written by ``segment bench --guard-data`` into the cache, or shipped beside a
        checkpoint as ``<checkpoint>.guard.json`` (``segment bench --guard-out``). A
        record applies only to these weights, the same engine version and the same
        kind of CPU (``cpu_kind``): bf16 rounding and int8 arithmetic differ between them.
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
                candidates.append(json.loads(guard_record_path(self.cache_dir, self.key_for(size), shape, spec.backend,
                                                               spec.precision).read_text()))
            except (OSError, ValueError):
                pass
        if self.guard_file is not None:
            if self._shipped_records is None:
                self._shipped_records = read_guard_file(self.guard_file)
            candidates += self._shipped_records
        # An int8 record holds for the int8 model this Predictor would build (quantizer, settings,
        # calibration set): another calibration is another model.
        quantizer = (int8_quantizer(spec.backend, self.calib_data, int8_settings=self.int8_settings)
                     if spec.precision == "int8" else None)
        key = self.key_for(size)
        applicable = [rec for rec in candidates
                      if rec.get("key", key) == key
                      and rec.get("backend", spec.backend) == spec.backend
                      and rec.get("precision", spec.precision) == spec.precision
                      and rec.get("engine") == engine_version(spec.backend) and rec.get("cpu") == cpu_kind()
                      and rec.get("quantizer") == quantizer]
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

    # -- backend="auto": the remembered choice ----------------------------------------------------

    @staticmethod
    def primary_of(size: tuple[int, int]) -> tuple[int, int]:
        """The shape auto measures for ``size``: its pixel budget's 2:1 shape, or ``size`` itself."""
        budget = budget_of(tuple(size))
        return tuple(SIZES[budget]) if budget else tuple(size)

    def _selection_path(self, size: tuple[int, int]) -> Path:
        return self.cache_dir / self.key_for(size) / f"{size[0]}x{size[1]}" / self._selection_name()

    def _selection_name(self) -> str:
        # Keyed by the engines' versions too: an upgrade re-measures.
        import importlib.metadata as md

        versions = []
        for dist in ("torch", "onnxruntime", "openvino"):
            try:
                versions.append(f"{dist}{md.version(dist)}")
            except md.PackageNotFoundError:
                versions.append(f"{dist}-none")
        tag = hashlib.sha256("|".join(versions).encode()).hexdigest()[:8]
        return f"auto-{self.threads}threads-{tag}.json"

    def _read_selection_file(self, size: tuple[int, int]) -> dict | None:
        try:
            saved = json.loads(self._selection_path(size).read_text())
        except (OSError, ValueError):  # no file or unreadable: measure again
            return None
        if not isinstance(saved, dict) or "backend" not in saved or "requested_precision" not in saved:
            return None
        return saved

    def _saved_selection(self, size: tuple[int, int]) -> dict | None:
        """The choice an earlier run measured at ``size`` on this machine, if its guard records have not changed."""
        saved = self._read_selection_file(size)
        if saved is None:
            return None
        return saved if saved.get("guard_records") == self._guard_fingerprint(size) else None

    def saved_selections(self) -> dict[tuple[int, int], dict]:
        """Every remembered auto choice of these weights at these threads and engine versions, by shape;
        ``stale`` is True where the guard records changed since (the next use measures again)."""
        name = self._selection_name()
        found = {}
        folders = [self.cache_dir / self._key_of(model) for model in self.sized.models()]
        for path in sorted(path for folder in folders for path in folder.glob(f"*/{name}")):
            try:
                size = tuple(int(v) for v in path.parent.name.split("x"))
            except ValueError:
                continue
            saved = self._read_selection_file(size)
            if saved is not None:
                found[size] = {**saved, "path": str(path),
                               "stale": saved.get("guard_records") != self._guard_fingerprint(size)}
        return dict(sorted(found.items()))

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
                                          threads=self.threads, candidates=saved.get("candidates", []), cached=True,
                                          **_selection_fields(saved))
        self._watch(size, self.selections[size].candidates)
        log.info("auto backend at %dx%d: %s %s (measured earlier: %s)", size[0], size[1], backend.name,
                 backend.precision, self._selection_path(size))
        return backend

    def _save_selection(self, size: tuple[int, int], sel: Selection, requested_precision: str) -> None:
        payload = {"backend": sel.backend, "precision": sel.precision, "requested_precision": requested_precision,
                   "guard_records": self._guard_fingerprint(size), "reason": sel.reason,
                   "chosen_utc": sel.chosen_utc, "rounds": sel.rounds, "model": self.name, "threads": self.threads,
                   "candidates": sel.candidates, "history": sel.history[-HISTORY_KEPT:]}
        try:
            write_json_atomic(self._selection_path(size), payload)
        except OSError as exc:  # a read-only cache only costs a re-measurement next time
            log.warning("could not save the auto choice: %s", exc)

    # -- backend="auto": which backend serves a shape ---------------------------------------------

    def _auto_backend(self, size: tuple[int, int]) -> Backend:
        """The backend for a shape not served yet (``self._lock`` held)."""
        primary = self.primary_of(size)
        if self.auto.start == "measure" or self._known(primary):
            return self._select(size) if primary == size else self._select_like(size, primary)
        # Nothing chosen for this budget yet: serve the default now, choose later.
        self._defaults.add(size)
        if self.auto.start == "background":
            self._schedule(primary, lambda: self._select_and_adopt(primary))
        else:
            self._pending.add(primary)
        spec = self.default_spec(size)
        log.info("auto backend at %dx%d: %s %s until the candidates are measured", size[0], size[1],
                 spec.backend, spec.precision)
        return self.build(spec, size)

    def _known(self, primary: tuple[int, int]) -> bool:
        """Whether a choice exists for this budget: made here, or remembered (and not being re-made)."""
        if primary in self.selections:
            return True
        return not self._forcing(primary) and self._saved_selection(primary) is not None

    def _forcing(self, primary: tuple[int, int]) -> bool:
        return self.auto.reselect and tuple(primary) not in self._forced

    def default_spec(self, size: tuple[int, int]) -> BackendSpec:
        """What auto serves before it has measured: OpenVINO at bf16, else mixed, where a guard record
        for this shape's budget passes (records are per CPU kind and engine version), else fp32;
        torch fp32 without OpenVINO. No build or timing: the shipped records are the evidence."""
        if "openvino" not in available_backends():
            return BackendSpec(backend="torch", precision="fp32", threads=self.threads)
        runnable = {(s.backend, s.precision) for s in candidate_specs(threads=self.threads)}
        for precision in ("bf16", "mixed"):
            spec = BackendSpec(backend="openvino", precision=precision, threads=self.threads)
            if ("openvino", precision) in runnable and self._record_passes(self.guard_record(spec, size)):
                return spec
        return BackendSpec(backend="openvino", precision="fp32", threads=self.threads)

    def _record_passes(self, rec: dict | None) -> bool:
        return (rec is not None and "agreement" in rec
                and guard_passes(precision=rec.get("precision", ""), agreement=rec["agreement"],
                                 miou_drop=rec.get("miou_drop"), min_agreement=self.min_agreement))

    def _select_pending(self, size: tuple[int, int]) -> None:
        """``start="after_first"``: the budget's first request ran on the default; select before this one."""
        primary = self.primary_of(size)
        with self._lock:
            if primary not in self._pending:
                return
            self._pending.discard(primary)
        self._select_and_adopt(primary)

    def skip_pending_selections(self) -> int:
        """``start="after_first"``: keep the budgets waiting for a selection on their default from
        here on. Nothing is measured or remembered, so the next run decides again. Returns how
        many budgets were waiting."""
        with self._lock:
            waiting = len(self._pending)
            self._pending.clear()
        return waiting

    def _select_and_adopt(self, primary: tuple[int, int]) -> None:
        """Choose at a budget's primary shape, then move every shape of the budget onto the choice."""
        self._adopt(primary, self._select(primary))

    def _adopt(self, primary: tuple[int, int], chosen: Backend) -> None:
        """Serve ``chosen`` at ``primary`` and the choice at the budget's other served shapes. A request
        already running keeps the backend it started with (``predict`` holds its own reference)."""
        with self._lock:
            others = [s for s in self._backends if s != primary and self.primary_of(s) == primary]
            self._backends[primary] = chosen
            self._defaults.discard(primary)
        for shape in others:
            backend = self._select_like(shape, primary)
            with self._lock:
                self._backends[shape] = backend
                self._defaults.discard(shape)

    def _select_like(self, size: tuple[int, int], primary: tuple[int, int]) -> Backend:
        """A bucket of a pixel budget: reuse the choice made at the budget's 2:1 shape ``primary``.

        Relative speeds depend on the pixel count, not on the aspect ratio, so the
        candidates that passed there are taken fastest first, without measuring
        again; one whose guard record at this shape fails is passed over, and one
        that does not build here is skipped. Only if none is left is this shape
        measured on its own.
        """
        if primary in self.selections:
            base = self.selections[primary]
        else:
            saved = None if self._forcing(primary) else self._saved_selection(primary)
            if saved is None:  # never measured: measure the budget once, at its own shape
                self.backend_for(primary)
                base = self.selections[primary]
            else:
                base = Selection(backend=saved["backend"], precision=saved["precision"], size=primary,
                                 threads=self.threads, candidates=saved.get("candidates", []), cached=True,
                                 **_selection_fields(saved))
                for row in base.candidates:  # files written before rows kept the precision asked for
                    if row.get("chosen") and "requested_precision" not in row:
                        row["requested_precision"] = saved["requested_precision"]
        if primary not in self._monitors:
            self._watch(primary, base.candidates)
        ranked = sorted((row for row in base.candidates if not row.get("skipped") and "request_ms" in row),
                        key=lambda row: row["request_ms"])
        report = []
        for row in ranked:
            spec = _spec_of(row, threads=self.threads)
            here = {"backend": spec.backend, "precision": spec.precision,
                    "at_budget_shape": {k: row[k] for k in ("request_ms", "agreement", "guard") if k in row}}
            report.append(here)
            rec = self.guard_record(spec, size)
            if (rec is not None and "agreement" in rec and tuple(rec.get("size", ())) == tuple(size)
                    and not self._record_passes(rec)):
                here["skipped"] = f"labelled-set guard at {size[0]}x{size[1]}: agreement {rec['agreement']:.4f}, " \
                                  f"mIoU drop {rec.get('miou_drop', 0.0):+.2f}"
                continue
            try:
                backend = self.build(spec, size)
            except Exception as exc:
                here["skipped"] = f"{type(exc).__name__}: {exc}"
                log.warning("auto backend at %dx%d: %s %s, the choice at %dx%d, does not build here (%s); "
                            "taking the next fastest", size[0], size[1], spec.backend, spec.precision,
                            primary[0], primary[1], here["skipped"])
                continue
            here["chosen"] = True
            self.selections[size] = Selection(backend=backend.name, precision=backend.precision, size=size,
                                              threads=self.threads, candidates=report, cached=base.cached,
                                              reused_from=tuple(primary), reason=base.reason,
                                              chosen_utc=base.chosen_utc, rounds=base.rounds)
            log.info("auto backend at %dx%d: %s %s (the choice at %dx%d, same pixel budget)", size[0], size[1],
                     backend.name, backend.precision, primary[0], primary[1])
            return backend
        return self._select(size)

    # -- backend="auto": measuring ----------------------------------------------------------------

    def _select(self, size: tuple[int, int]) -> Backend:
        if not self._forcing(size):
            cached = self._cached_selection(size)
            if cached is not None:
                return cached
        return self._measure(size)

    def _measure(self, size: tuple[int, int], *, reason: str | None = None) -> Backend:
        """Build every candidate that passes the guard, time them interleaved, keep the fastest."""
        reason = reason or ("forced" if self._forcing(size) else "first measurement")
        report, qualified = self._qualify(size)
        if not qualified:
            raise BackendError(f"no backend passed the accuracy guard at {size}: {report}")
        chosen = self._record_measurement(size, report, qualified, self._time_candidates(size, qualified),
                                          event={"reason": reason})
        self._forced.add(tuple(size))
        return chosen

    def reselect(self, size: tuple[int, int]) -> Selection:
        """Measure the candidates at ``size`` now, whatever was remembered, and serve the choice."""
        primary = self.primary_of(size)
        self._adopt(primary, self._measure(primary, reason="forced"))
        return self.selections[primary]

    def _qualify(self, size: tuple[int, int]) -> tuple[list[dict], list[tuple[dict, BackendSpec, Backend]]]:
        """Every candidate's row (why skipped, agreement), and the built ones that pass the guard."""
        images = self.guard_images(size)
        refs: list[np.ndarray] = []  # torch fp32 labels of the guard images, computed only if a candidate needs them
        report, qualified = [], []
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
                if not self._record_passes(rec):
                    row["skipped"] = f"labelled-set guard: {row['guard']}"
                    continue
            if spec.precision == "int8" and (rec is None or rec.get("miou_drop", 1e9) >= MAX_MIOU_DROP):
                row["skipped"] = ("no mIoU guard record (run 'segment bench --guard-data')" if rec is None
                                  else f"mIoU drop {rec['miou_drop']:.2f} >= {MAX_MIOU_DROP}")
                continue
            if self._stop.is_set():
                raise _Stopped("stopped before the candidates were measured")
            try:
                backend = self.build(spec, size)
                if "guard" not in row:
                    refs = refs or [self.reference_labels(img) for img in images]
                    agree = float(np.mean([np.mean(self._labels(backend, img, size) == ref)
                                           for img, ref in zip(images, refs)]))
            except Exception as exc:  # a backend that cannot run here is skipped, with the reason kept
                row["skipped"] = f"{type(exc).__name__}: {exc}"
                continue
            row.update(precision=backend.precision, requested_precision=spec.precision)
            if "guard" in row:
                row["agreement"] = rec["agreement"]
            else:
                row.update(agreement=agree, guard=f"{len(images)} guard images "
                                                  f"({'calib_data' if self.calib_data else 'bundled photos'})")
                if agree < self.min_agreement:
                    row["skipped"] = f"agreement {agree:.4f} < {self.min_agreement}"
                    continue
            qualified.append((row, spec, backend))
        return report, qualified

    def _time_candidates(self, size: tuple[int, int], qualified: list) -> Measurement:
        """Interleaved rounds of whole requests (backend + upsample-argmax) on one guard image, in this
        process and with this Predictor's threads: the way requests run."""
        image = self.guard_images(size, count=1)[0]
        runners = {_label(row): (lambda b=backend: self._labels(b, image, size)) for row, _, backend in qualified}
        with WORK_LOCK:
            measurement = measure_interleaved(runners, config=self.auto.measure, clock=self.auto.clock,
                                              stop=self._stop)
        if self._stop.is_set():
            raise _Stopped("stopped while measuring the candidates")
        return measurement

    def _record_measurement(self, size: tuple[int, int], report: list[dict], qualified: list, measurement,
                            *, event: dict) -> Backend:
        """Write the figures into the rows, choose the fastest, remember it (file + history); its backend."""
        timings = {t.label: t for t in measurement.timings}
        for row, _, _ in qualified:
            t = timings[_label(row)]
            row.update(request_ms=round(t.median_ms, 3), spread_ms=[round(v, 3) for v in t.spread_ms],
                       runs=len(t.times_ms))
        best = measurement.fastest
        chosen_row, chosen_spec, chosen = next(q for q in qualified if _label(q[0]) == best.label)
        for row in report:
            row["chosen"] = row is chosen_row
        event = {"utc": utc_now(), **event, "to": best.label, "rounds": measurement.rounds,
                 "separated": measurement.separated, "figures": measurement.figures()}
        earlier = self.selections.get(size)
        history = earlier.history if earlier else (self._read_selection_file(size) or {}).get("history", [])
        sel = Selection(backend=chosen.name, precision=chosen.precision, size=size, threads=self.threads,
                        candidates=report, reason=event["reason"], chosen_utc=event["utc"],
                        rounds=measurement.rounds, history=[*history, event][-HISTORY_KEPT:])
        self.selections[size] = sel
        self._watch(size, report)
        self._save_selection(size, sel, requested_precision=chosen_spec.precision)
        runner_up = f", next {measurement.timings[1].label} {measurement.timings[1].median_ms:.1f} ms" \
            if len(measurement.timings) > 1 else ""
        self._notify(f"auto backend at {size[0]}x{size[1]}: {best.label} ({event['reason']}: "
                     f"{best.median_ms:.1f} ms per request{runner_up}; {measurement.rounds} interleaved rounds)")
        return chosen

    # -- backend="auto": the live re-check --------------------------------------------------------

    def _watch(self, primary: tuple[int, int], candidates: list[dict]) -> None:
        """(Re)start the live check of a budget's choice against the best other candidate's figure."""
        others = [r["request_ms"] for r in candidates
                  if "request_ms" in r and not r.get("skipped") and not r.get("chosen")]
        best = min(others) if others else None
        with self._stats_lock:
            monitor = self._monitors.get(primary)
            if monitor is None:
                self._monitors[primary] = LiveMonitor(config=self.auto.live, best_other_ms=best, clock=self.auto.clock)
            else:
                monitor.restart(best_other_ms=best)

    def _observe(self, size: tuple[int, int], backend: Backend, ms: float) -> None:
        """One real request's time on the chosen backend; starts a re-check when the live rule says so."""
        if self.backend != "auto" or not self.auto.recheck:
            return
        primary = self.primary_of(size)
        with self._stats_lock:
            monitor = self._monitors.get(primary)
            if (monitor is None or size in self._defaults or primary in self._queued
                    or self._backends.get(size) is not backend or not monitor.observe(ms)):
                return
            running, best, count = monitor.running_median_ms, monitor.best_other_ms, len(monitor.window)
            monitor.restart(best_other_ms=best)  # the cooldown starts now, whatever the re-check finds
        why = (f"running median {running:.1f} ms over the last {count} "
               f"requests > {self.auto.live.slow_factor} x {best:.1f} ms, the best other candidate's figure")
        log.info("auto backend at %dx%d: re-checking (%s)", size[0], size[1], why)
        if self.auto.start == "background":
            self._schedule(primary, lambda: self._recheck(primary, why=why, running_ms=running))
        else:  # in the request's own thread: what it measures is what requests see
            self._recheck(primary, why=why, running_ms=running)

    def _recheck(self, primary: tuple[int, int], *, why: str, running_ms: float) -> None:
        """Time the chosen backend against the fastest others again (fresh instances, interleaved);
        switch the budget to another if it now wins. Both outcomes go into the file's history."""
        sel = self.selections.get(primary)
        if sel is None:
            saved = self._saved_selection(primary)
            if saved is None:
                return
            sel = Selection(backend=saved["backend"], precision=saved["precision"], size=primary,
                            threads=self.threads, candidates=saved.get("candidates", []), cached=True,
                            **_selection_fields(saved))
            self.selections[primary] = sel
        rows = [r for r in sel.candidates if "request_ms" in r and not r.get("skipped")]
        current = next((r for r in rows if r.get("chosen")), None)
        if current is None:
            return
        others = sorted((r for r in rows if r is not current), key=lambda r: r["request_ms"])
        qualified = []
        for row in [current, *others[: self.auto.live.others]]:
            spec = _spec_of(row, threads=self.threads)
            try:
                qualified.append((row, spec, self.build(spec, primary)))
            except Exception as exc:
                log.warning("auto re-check at %s: %s %s does not build (%s)", primary, spec.backend, spec.precision, exc)
        if len(qualified) < 2:
            return
        was, figure = _label(current), current["request_ms"]
        measurement = self._time_candidates(primary, qualified)
        switched = measurement.fastest.label != was
        chosen = self._record_measurement(primary, sel.candidates, qualified, measurement, event={
            "reason": "re-check switch" if switched else "re-check kept", "from": was, "why": why,
            "running_median_ms": round(running_ms, 3), "measured_before_ms": figure})
        if switched:
            log.warning("auto backend at %dx%d: switched from %s (%.1f ms per request on real requests, %.1f ms "
                        "when measured) to %s (%.1f ms, interleaved re-measurement)", primary[0], primary[1], was,
                        running_ms, figure, measurement.fastest.label, measurement.fastest.median_ms)
            self._adopt(primary, chosen)

    # -- backend="auto": the background worker and the status line --------------------------------

    def _schedule(self, primary: tuple[int, int], job) -> None:
        """Run ``job`` in this Predictor's one background thread (a budget at most once in the queue)."""
        with self._lock:
            if primary in self._queued or self._stop.is_set():
                return
            self._queued.add(primary)
            self._jobs.append((primary, job))
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name=f"auto-{self.name}", daemon=True)
                self._worker.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._jobs or self._stop.is_set():
                    self._worker = None
                    return
                primary, job = self._jobs.popleft()
            try:
                job()
            except _Stopped:  # shutting down: nothing was recorded, nothing to report
                pass
            except Exception as exc:  # the shape keeps serving what it serves; say why
                log.warning("auto backend at %dx%d: background measurement failed: %s", primary[0], primary[1], exc)
                self._notify(f"auto backend at {primary[0]}x{primary[1]}: measurement failed ({exc}); "
                             "serving the default")
            finally:
                with self._lock:
                    self._queued.discard(primary)

    def wait_background(self, timeout: float | None = None) -> bool:
        """Wait for the queued background measurements; True when none is left."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                worker = self._worker
            if worker is None:
                return True
            worker.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                return False

    def stop_background(self, timeout: float = 120.0) -> None:
        """Stop after the current candidate or round (a thread inside an engine at interpreter exit can
        abort the process); what is being measured is not recorded."""
        self._stop.set()
        self.wait_background(timeout)

    def serving_state(self, size: tuple[int, int]) -> ServingState:
        size = tuple(size)
        primary = self.primary_of(size)
        measuring = primary in self._queued or primary in self._pending
        backend = self._backends.get(size)
        if backend is None:
            return ServingState(backend=self.backend, precision=self.precision, how="not built", measuring=measuring)
        if self.backend != "auto":
            return ServingState(backend=backend.name, precision=backend.precision, how="fixed", measuring=False)
        if size in self._defaults:
            return ServingState(backend=backend.name, precision=backend.precision, how="default", measuring=measuring)
        sel = self.selections.get(primary) or self.selections.get(size)
        how = "measured" if sel is None or not sel.cached else "remembered"
        how = "switched" if sel is not None and sel.reason == "re-check switch" else how
        when = f" {sel.chosen_utc}" if sel is not None and sel.chosen_utc else ""
        reason = f"{sel.reason or 'first measurement'}{when}" if sel is not None else ""
        return ServingState(backend=backend.name, precision=backend.precision, how=how, measuring=measuring,
                            reason=reason)

    def _notify(self, line: str) -> None:
        log.info(line)
        for listener in list(self.listeners):
            try:
                listener(line)
            except Exception:  # a broken listener must not break serving
                pass

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



class _Stopped(Exception):
    """``stop_background`` interrupted a measurement; it is not recorded."""


def _label(row: dict) -> str:
    """A candidate's name in measurements and files: backend and the precision asked for."""
    return f"{row['backend']} {row.get('requested_precision', row['precision'])}"


def _spec_of(row: dict, *, threads: int) -> BackendSpec:
    return BackendSpec(backend=row["backend"], precision=row.get("requested_precision", row["precision"]),
                       threads=threads)


def _selection_fields(saved: dict) -> dict:
    """The Selection fields a remembered file carries (files written before these had none)."""
    return {"reason": saved.get("reason", "first measurement"), "chosen_utc": saved.get("chosen_utc"),
            "rounds": saved.get("rounds"), "history": list(saved.get("history", []))}
