"""Every backend x precision this machine offers: runs, labels its real precision, agrees with torch fp32."""

import os

import numpy as np
import pytest
import torch

from segment.backends import BackendError, BackendSpec, available_backends, build_backend, candidate_specs
from segment.backends.cache import model_key
from segment.predict import Predictor
from segment.quantize import calibration_images

SIZE = (64, 128)
# Argmax agreement with torch fp32 on a BN-calibrated random model (small logit margins: harsh).
MIN_AGREEMENT = {"fp32": 0.995, "bf16": 0.8, "mixed": 0.8, "int8": 0.4}


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    return Predictor.from_preset("default", threads=1)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def images():
    return calibration_images(SIZE, count=2)


@pytest.mark.parametrize("spec", candidate_specs(threads=1), ids=lambda s: f"{s.backend}-{s.precision}")
def test_backend_runs_and_agrees(spec, predictor, cache, images):
    backend = build_backend(predictor.model, mean=predictor.mean_unit, std=predictor.std_unit, size=SIZE, spec=spec,
                            cache_dir=cache)
    assert backend.name == spec.backend
    # The label is read back from the engine; int8 says when its float layers run bf16.
    assert backend.precision in {"int8": ("int8", "int8+bf16")}.get(spec.precision, (spec.precision,))
    logits = np.asarray(backend.run(images[0][None]))
    assert logits.shape == (19, SIZE[0] // 8, SIZE[1] // 8) and logits.dtype == np.float32
    p = Predictor(model=predictor.model, classes=predictor.classes, palette=predictor.palette.tolist(),
                  mean=predictor.mean_unit, std=predictor.std_unit, backend=spec.backend, precision=spec.precision,
                  threads=1, cache_dir=cache)
    agree = np.mean([np.mean(p.predict(im, size="native").labels == predictor.reference_labels(im)) for im in images])
    assert agree >= MIN_AGREEMENT[spec.precision], f"{spec.backend} {spec.precision}: agreement {agree:.4f}"


def test_fp32_backends_match_torch_logits(predictor, cache, images):
    torch_logits = build_backend(predictor.model, mean=predictor.mean_unit, std=predictor.std_unit, size=SIZE,
                                 spec=BackendSpec("torch", "fp32", 1)).run(images[0][None])
    for name in available_backends()[1:]:
        b = build_backend(predictor.model, mean=predictor.mean_unit, std=predictor.std_unit, size=SIZE,
                          spec=BackendSpec(name, "fp32", 1), cache_dir=cache)
        assert np.abs(np.asarray(b.run(images[0][None])) - torch_logits.numpy()).max() < 1e-3, name


def test_exports_are_cached_by_weights(predictor, cache):
    spec = BackendSpec("onnxruntime", "fp32", 1)
    build_backend(predictor.model, mean=predictor.mean_unit, std=predictor.std_unit, size=SIZE, spec=spec, cache_dir=cache)
    files = sorted(cache.rglob("graph-fp32.onnx"))
    assert files
    stamp = {f: os.stat(f).st_mtime_ns for f in files}
    build_backend(predictor.model, mean=predictor.mean_unit, std=predictor.std_unit, size=SIZE, spec=spec, cache_dir=cache)
    assert {f: os.stat(f).st_mtime_ns for f in files} == stamp  # reused, not rewritten
    # No temporary leftovers from the atomic writes.
    assert not [p for p in cache.rglob("*") if p.name.startswith(".")]
    # Different weights, different key.
    other = Predictor.from_preset("default", calibrate_bn=False)
    assert model_key(other.model) != model_key(predictor.model)


@pytest.mark.parametrize("backend, export", [("onnxruntime", "graph-fp32.onnx"), ("openvino", "graph-fp32-striped.ir/model.bin")])
def test_a_damaged_cached_export_is_exported_again(predictor, tmp_path, images, caplog, backend, export):
    if backend not in available_backends():
        pytest.skip(f"{backend} is not installed")
    spec = BackendSpec(backend, "fp32", 1)
    build = lambda: build_backend(predictor.model, mean=predictor.mean_unit, std=predictor.std_unit, size=SIZE,
                                  spec=spec, cache_dir=tmp_path)
    expected = np.asarray(build().run(images[0][None]))
    (path,) = tmp_path.rglob(export)
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[: size // 3])  # truncated, as by a disk that filled up
    with caplog.at_level("WARNING", logger="segment.backends"):
        logits = np.asarray(build().run(images[0][None]))
    assert "did not load from the export cache" in caplog.text and "exporting it again" in caplog.text
    np.testing.assert_array_equal(logits, expected)
    assert path.stat().st_size == size  # repaired in the cache, not only worked around
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]  # nothing left of the damaged one


def test_a_failing_fresh_export_is_not_tried_twice(predictor, tmp_path, monkeypatch):
    import segment.backends as backends

    calls = []

    def failing_export(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(backends, "export_graph_onnx", failing_export)
    with pytest.raises(RuntimeError, match="exporter crashed"):
        build_backend(predictor.model, mean=predictor.mean_unit, std=predictor.std_unit, size=SIZE,
                      spec=BackendSpec("onnxruntime", "fp32", 1), cache_dir=tmp_path)
    assert len(calls) == 1  # nothing came from the cache, so nothing is exported again


def test_unknown_or_impossible_choices_are_user_errors(predictor):
    for spec in (BackendSpec("tensorrt", "fp32"), BackendSpec("torch", "int8"), BackendSpec("torch", "fp64")):
        with pytest.raises(BackendError):
            build_backend(predictor.model, mean=predictor.mean_unit, std=predictor.std_unit, size=SIZE, spec=spec)


@pytest.mark.parametrize("flags, kind", [
    ({"avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"}, "amx_bf16"),  # Sapphire Rapids
    ({"avx512f", "avx512_vnni", "avx512_bf16"}, "avx512_bf16"),  # Zen 4/5, Cooper Lake
    ({"avx512f", "avx512_vnni"}, "vnni_no_bf16"),  # Ice Lake
    ({"avx2", "avx_vnni"}, "vnni_no_bf16"),  # Alder Lake
    ({"avx2", "fma"}, "no_bf16"),  # Zen 3, Haswell
])
def test_cpu_kind_separates_bf16_and_int8_hardware(flags, kind):
    from segment.backends.base import kind_of_cpu

    assert kind_of_cpu(flags | {"sse4_2"}) == kind
