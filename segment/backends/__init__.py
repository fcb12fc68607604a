"""Inference backends: torch, ONNX Runtime, OpenVINO, each at fp32 / bf16 / mixed / int8 where it can.

``build_backend`` turns a model into a runnable graph for one input size,
exporting (and caching) ONNX / OpenVINO IR / int8 files on first use.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import importlib.util
import logging
import os
import shutil
from pathlib import Path

import torch

from segment.backends.base import BACKENDS, PRECISIONS, Backend, BackendError, BackendSpec, resolve_threads
from segment.backends.cache import default_cache_dir, model_key
from segment.backends.graph import InferenceGraph
from segment.backends.stripes import STRIPE_ROWS
from segment.export import export_graph_onnx, onnx_to_openvino

log = logging.getLogger(__name__)
# The cached exports the current build_backend call took as they were (see _reuse).
_REUSED: contextvars.ContextVar[list[Path] | None] = contextvars.ContextVar("reused_exports", default=None)

__all__ = [
    "BACKENDS", "PRECISIONS", "Backend", "BackendError", "BackendSpec", "InferenceGraph",
    "available_backends", "build_backend", "graph_key", "candidate_specs", "export_artifact", "resolve_threads",
]


def graph_key(model: torch.nn.Module, *, mean, std) -> str:
    """The cache key of a model's exports: weights, config-shaped state and normalization."""
    from segment.backends.graph import GRAPH_VERSION

    graph = InferenceGraph(model=model, mean=mean, std=std)
    # The config too: some architecture choices (gate activation, pooling mode, dilation
    # rates) leave the state dict unchanged.
    config = getattr(model, "config", None)
    return model_key(graph, extra={"graph": GRAPH_VERSION, "stripe_rows": graph.stripe_rows,
                                   "config": config.to_dict() if config is not None else None})


def available_backends() -> list[str]:
    found = ["torch"]
    for name, module in (("onnxruntime", "onnxruntime"), ("openvino", "openvino")):
        if importlib.util.find_spec(module) is not None:
            found.append(name)
    return found


def candidate_specs(*, threads: int | None = None) -> list[BackendSpec]:
    """Every backend x precision this machine can run (int8 included; the guard decides on it)."""
    from segment.backends.base import cpu_has_bf16

    specs = []
    for backend in available_backends():
        for precision in PRECISIONS:
            if backend == "torch" and precision == "int8":
                continue
            if backend == "onnxruntime" and precision in ("bf16", "mixed"):
                continue  # ORT's CPU provider has no bf16 kernels for these ops
            if precision in ("bf16", "mixed") and not cpu_has_bf16():
                continue
            specs.append(BackendSpec(backend=backend, precision=precision, threads=threads))
    return specs


def _calib_tag(calib_data: str | Path | None, count: int) -> str:
    if calib_data is None:
        return f"synthetic{count}"
    from segment.quantize import list_images

    files = list_images(calib_data, limit=count)
    h = hashlib.sha256(b"fit-and-pad")  # how the photos are prepared (segment.quantize.calibration_images)
    for f in files:  # what the images are, not where they are: a replaced photo changes the key
        h.update(f.name.encode())
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return "calib" + h.hexdigest()[:10]


DEFAULT_CALIB_COUNT = 16  # calibration photos for int8


@functools.lru_cache(maxsize=32)  # hashes the calibration photos; asked for on every guard lookup
def int8_quantizer(backend: str, calib_data: str | Path | None = None, calib_count: int = DEFAULT_CALIB_COUNT,
                   int8_settings=None) -> str:
    """Which int8 model ``build_backend`` makes for ``backend``: the quantizer, its settings and
    the calibration set (the same tags as the export cache's file names). A guard record of an
    int8 model names it, and applies only to an int8 model made the same way."""
    from segment.quantize import calibration_folder

    calib = _calib_tag(calibration_folder(calib_data), calib_count)
    if backend == "openvino":
        from segment import quantize_nncf

        return f"nncf-{(int8_settings or quantize_nncf.DEFAULT_SETTINGS).tag()}-{calib}"
    return f"{backend}-qdq-{calib}"


def _artifact(model: torch.nn.Module, *, mean, std, size, fmt: str, precision: str, calib_data, calib_count: int,
              cache_dir: Path | None, int8_settings=None, rebuild: bool = False) -> Path:
    """The cached ONNX / OpenVINO file for this model, size and precision, exported if missing.

    int8: ONNX (ONNX Runtime) is ORT's static QDQ model (``segment.quantize``); OpenVINO is
    NNCF's quantization of the fp32 IR (``segment.quantize_nncf``, ``int8_settings`` or its
    defaults). The file name carries the calibration set and, for NNCF, a hash of its settings.
    int8 without ``calib_data`` is calibrated on the bundled street photos. ``rebuild``: export
    every file again, the cached ones removed first.
    """
    if precision == "int8":
        from segment.quantize import calibration_folder

        calib_data = calibration_folder(calib_data)
    # OpenVINO gets the graph with striped high-resolution blocks (faster there and in torch);
    # ONNX Runtime and int8 the plain one: ORT ran the striped graph ~5% slower at 1024x2048,
    # a plain ONNX is what a user exporting for another engine wants, and NNCF would calibrate
    # each stripe's copy of a layer on its own rows.
    striped = fmt == "openvino" and precision != "int8"
    graph = InferenceGraph(model=model, mean=mean, std=std, stripe_rows=STRIPE_ROWS if striped else None).eval()
    folder = _export_folder(model, mean=mean, std=std, size=size, cache_dir=cache_dir)
    fp32 = folder / ("graph-fp32-striped.onnx" if striped else "graph-fp32.onnx")
    if not _reuse(fp32, rebuild):
        export_graph_onnx(graph, fp32, size=tuple(size))
    if precision == "int8" and fmt == "openvino":
        return _nncf_artifact(fp32, size=size, calib_data=calib_data, calib_count=calib_count,
                              settings=int8_settings, rebuild=rebuild)
    onnx_path = fp32
    if precision == "int8":
        tag = _calib_tag(calib_data, calib_count)
        onnx_path = folder / f"graph-int8-{tag}.onnx"
        if not _reuse(onnx_path, rebuild):
            from segment.quantize import calibration_images, quantize_onnx

            quantize_onnx(fp32, onnx_path, images=calibration_images(tuple(size), folder=calib_data, count=calib_count))
    if fmt == "onnx":
        return onnx_path
    xml = onnx_path.with_name(onnx_path.stem + ".ir") / "model.xml"
    if not _reuse(xml, rebuild):
        xml = onnx_to_openvino(onnx_path, onnx_path.with_suffix(".xml"))
    return xml


def _reuse(path: Path, rebuild: bool) -> bool:
    """Whether the cached export at ``path`` is used as it is. With ``rebuild`` it is removed
    (an IR's whole ``.ir`` folder), since an export written again does not replace a folder."""
    if not rebuild:
        if path.exists() and (reused := _REUSED.get()) is not None:
            reused.append(path)
        return path.exists()
    target = path.parent if path.parent.suffix == ".ir" else path
    if target.exists():
        doomed = target.with_name(f".{target.name}.damaged-{os.getpid()}")
        os.replace(target, doomed)  # out of the way at once, for other processes too
        shutil.rmtree(doomed) if doomed.is_dir() else doomed.unlink()
    return False


def _nncf_artifact(fp32_onnx: Path, *, size, calib_data, calib_count: int, settings=None, rebuild: bool = False) -> Path:
    """OpenVINO int8: NNCF's post-training quantization of the plain fp32 IR, cached per calibration set and settings."""
    if importlib.util.find_spec("nncf") is None:
        raise BackendError("OpenVINO int8 is quantized with NNCF, which is not installed; "
                           "pip install 'mnv3-lraspp[export]' (or nncf)")
    from segment import quantize_nncf

    settings = settings or quantize_nncf.DEFAULT_SETTINGS
    xml = fp32_onnx.parent / f"graph-int8-nncf-{_calib_tag(calib_data, calib_count)}-{settings.tag()}.ir" / "model.xml"
    if _reuse(xml, rebuild):
        return xml
    fp32_xml = fp32_onnx.with_name(fp32_onnx.stem + ".ir") / "model.xml"
    if not _reuse(fp32_xml, rebuild):
        fp32_xml = onnx_to_openvino(fp32_onnx, fp32_onnx.with_suffix(".xml"))
    from segment.quantize import calibration_images

    images = calibration_images(tuple(size), folder=calib_data, count=calib_count)
    return quantize_nncf.quantize_openvino(fp32_xml, xml.parent.with_suffix(".xml"), images=images, settings=settings)


def _mixed_artifacts(model: torch.nn.Module, *, mean, std, size, cache_dir: Path | None,
                     rebuild: bool = False) -> tuple[Path, Path]:
    """OpenVINO "mixed": the graph as two IRs, the input side (compiled fp32) and the rest (compiled bf16).

    Two compiled models rather than one with per-layer precision marks: the
    handover costs one tensor, and each model is the plain single-precision
    case the engine is built and tested for.
    """
    folder = _export_folder(model, mean=mean, std=std, size=size, cache_dir=cache_dir)
    first, rest = InferenceGraph(model=model, mean=mean, std=std).eval().parts()
    image = torch.zeros(1, *size, 3, dtype=torch.uint8)
    paths = []
    for name, part, names in (("input", first, ("image", "x")), ("rest", rest, ("x", "logits"))):
        xml = folder / f"graph-mixed-{name}.ir" / "model.xml"
        if not _reuse(xml, rebuild):
            onnx_path = folder / f"graph-mixed-{name}.onnx"
            if not _reuse(onnx_path, rebuild):
                with torch.no_grad():  # the rest is traced on what the input side hands over
                    example = image if name == "input" else first(image)
                export_graph_onnx(part, onnx_path, size=tuple(size), example=example, names=names)
            xml = onnx_to_openvino(onnx_path, onnx_path.with_suffix(".xml"))
        paths.append(xml)
    return paths[0], paths[1]


def _export_folder(model: torch.nn.Module, *, mean, std, size, cache_dir: Path | None) -> Path:
    """Where one model's exports for one input size are cached."""
    return Path(cache_dir or default_cache_dir()) / graph_key(model, mean=mean, std=std) / f"{size[0]}x{size[1]}"


def export_artifact(*, model, mean, std, size, fmt: str, precision: str = "fp32", calib_data=None,
                    calib_count: int = DEFAULT_CALIB_COUNT, out: str | Path | None = None, cache_dir: Path | None = None,
                    int8_settings=None) -> Path:
    """The cached artefact (what ``segment export`` writes), copied to ``out`` when one is given."""
    if fmt not in ("onnx", "openvino"):
        raise BackendError(f"unknown export format {fmt!r}; choose onnx or openvino")
    if fmt == "openvino" and importlib.util.find_spec("openvino") is None:
        raise BackendError("OpenVINO is not installed; pip install 'mnv3-lraspp[export]' (or openvino)")
    path = _artifact(model, mean=mean, std=std, size=size, fmt=fmt, precision=precision, calib_data=calib_data,
                     calib_count=calib_count, cache_dir=cache_dir, int8_settings=int8_settings)
    if out is None:
        return path
    out = Path(out)
    from segment.atomic import write_path_atomic as atomic_write

    if fmt == "onnx":
        return atomic_write(out, lambda tmp: shutil.copyfile(path, tmp))
    # OpenVINO: out names the .xml; its .bin goes beside it.
    out_xml = out if out.suffix == ".xml" else out / "model.xml"
    atomic_write(out_xml.with_suffix(".bin"), lambda tmp: shutil.copyfile(path.with_suffix(".bin"), tmp))
    return atomic_write(out_xml, lambda tmp: shutil.copyfile(path, tmp))


def build_backend(model: torch.nn.Module, *, mean, std, size: tuple[int, int], spec: BackendSpec,
                  cache_dir: Path | None = None, calib_data=None, calib_count: int = DEFAULT_CALIB_COUNT,
                  int8_settings=None) -> Backend:
    """``int8_settings``: OpenVINO int8's NNCF settings (``segment.quantize_nncf.Int8Settings``; None: its defaults)."""
    if spec.backend not in BACKENDS:
        raise BackendError(f"unknown backend {spec.backend!r}; choose one of {', '.join(BACKENDS)} or auto")
    if spec.precision not in PRECISIONS:
        raise BackendError(f"unknown precision {spec.precision!r}; choose one of {', '.join(PRECISIONS)}")
    if spec.backend not in available_backends():
        raise BackendError(f"backend {spec.backend} is not installed here; pip install {spec.backend}")
    size = tuple(int(v) for v in size)
    if spec.backend == "torch":
        from segment.backends.torch_backend import TorchBackend

        return TorchBackend(graph=InferenceGraph(model=model, mean=mean, std=std), size=size, spec=spec)
    # Check the precision before a slow export.
    if spec.backend == "onnxruntime" and spec.precision in ("bf16", "mixed"):
        raise BackendError(f"onnxruntime backend runs fp32 or int8, not {spec.precision!r}")
    exports = dict(model=model, mean=mean, std=std, size=size, spec=spec, cache_dir=cache_dir, calib_data=calib_data,
                   calib_count=calib_count, int8_settings=int8_settings)
    token = _REUSED.set([])
    try:
        return _engine_backend(**exports)
    except BackendError:
        raise
    except Exception as exc:
        if not _REUSED.get():
            raise  # nothing came from the cache: exporting again would fail the same way
        # A cached export that no longer loads (a truncated file, a cache folder damaged outside this
        # program) would otherwise fail on every start and leave auto on a slower backend for good.
        log.warning("%s %s at %dx%d did not load from the export cache (%s: %s); exporting it again",
                    spec.backend, spec.precision, size[0], size[1], type(exc).__name__,
                    ([line for line in str(exc).splitlines() if line.strip()] or [""])[-1].strip())
        return _engine_backend(**exports, rebuild=True)
    finally:
        _REUSED.reset(token)


def _engine_backend(*, model, mean, std, size, spec: BackendSpec, cache_dir, calib_data, calib_count: int,
                    int8_settings, rebuild: bool = False) -> Backend:
    """An ONNX Runtime or OpenVINO backend from the export cache (``rebuild``: its exports made again)."""
    if spec.backend == "openvino" and spec.precision == "mixed":
        from segment.backends.openvino_backend import OpenVinoBackend

        first, rest = _mixed_artifacts(model, mean=mean, std=std, size=size, cache_dir=cache_dir, rebuild=rebuild)
        return OpenVinoBackend(model_path=rest, first_path=first, size=size, spec=spec)
    fmt = "onnx" if spec.backend == "onnxruntime" else "openvino"
    path = _artifact(model, mean=mean, std=std, size=size, fmt=fmt, precision=spec.precision, calib_data=calib_data,
                     calib_count=calib_count, cache_dir=cache_dir, int8_settings=int8_settings, rebuild=rebuild)
    if spec.backend == "onnxruntime":
        from segment.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(onnx_path=path, size=size, spec=spec)
    from segment.backends.openvino_backend import OpenVinoBackend

    return OpenVinoBackend(model_path=path, size=size, spec=spec)
