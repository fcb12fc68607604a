"""The one inference path: Prediction fields, auto selection."""

import numpy as np
import pytest
import torch

from segment.checkpoint import make_checkpoint, save_checkpoint
from segment.predict import Prediction, Predictor
from segment.quantize import calibration_images


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    return Predictor.from_preset("default", threads=1)


def test_preset_predictor_labels_vary(predictor):
    # BN statistics measured on street scenes: labels vary, so agreement checks mean something.
    image = calibration_images((128, 256), count=1)[0]
    labels = predictor.reference_labels(image)
    assert len(np.unique(labels)) >= 3


def test_predict_returns_labels_at_image_size(predictor):
    image = calibration_images((100, 150), count=1)[0]
    p = predictor.predict(image, size=(64, 128))
    assert isinstance(p, Prediction)
    assert p.labels.shape == (100, 150) and p.labels.dtype == np.uint8
    assert p.backend == "torch" and p.precision == "fp32" and p.input_size == (64, 128)
    assert 0 < p.model_ms <= p.total_ms
    assert p.labels.max() < 19


def test_predict_agrees_with_plain_torch_reference(predictor):
    # Normalization in the graph + channels_last + the upsample-argmax shortcut vs the plain model.
    image = calibration_images((128, 256), count=2)[1]
    ours = predictor.predict(image, size="native").labels
    ref = predictor.reference_labels(image)
    assert np.mean(ours == ref) >= 0.999


def test_bad_image_is_a_user_error(predictor):
    with pytest.raises(Exception) as exc:
        predictor.predict(np.zeros((10, 10), np.float32), size=(32, 32))
    assert getattr(exc.value, "is_user_error", False)
    with pytest.raises(Exception) as exc:
        predictor.predict(np.zeros((10, 10, 3), np.uint8), size="quarter")
    assert "half, full, native" in str(exc.value)


def test_from_checkpoint_takes_backend_keywords(tmp_path, predictor):
    import inspect

    from segment.presets import get_preset

    ckpt = make_checkpoint(model=predictor.model, config=get_preset("default").config,
                           classes=[f"c{i}" for i in range(19)], palette=[[i, i, i] for i in range(19)],
                           mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    save_checkpoint(tmp_path / "m.pt", ckpt)
    params = inspect.signature(Predictor.from_checkpoint).parameters
    assert {"backend", "precision", "threads"} <= set(params)  # the demo looks for these by name
    p = Predictor.from_checkpoint(tmp_path / "m.pt", backend="onnxruntime", threads=1, cache_dir=tmp_path / "cache")
    image = calibration_images((64, 128), count=1)[0]
    out = p.predict(image, size="native")
    assert out.backend == "onnxruntime" and out.precision == "fp32"
    assert np.mean(out.labels == p.reference_labels(image)) >= 0.995
    assert p.config == get_preset("default").config


def test_auto_picks_a_guarded_backend_and_says_why(tmp_path, predictor):
    p = Predictor(model=predictor.model, classes=predictor.classes, palette=predictor.palette.tolist(),
                  mean=predictor.mean_unit, std=predictor.std_unit, backend="auto", threads=1,
                  cache_dir=tmp_path / "cache")
    image = calibration_images((64, 128), count=1)[0]
    out = p.predict(image, size="native")
    sel = p.selections[(64, 128)]
    chosen = [c for c in sel.candidates if c.get("chosen")]
    assert len(chosen) == 1
    assert (chosen[0]["backend"], chosen[0]["precision"]) == (out.backend, out.precision) == (sel.backend, sel.precision)
    assert chosen[0]["agreement"] >= 0.995
    measured = [c for c in sel.candidates if "request_ms" in c and not c.get("skipped")]
    assert chosen[0]["request_ms"] == min(c["request_ms"] for c in measured)
    # int8 needs an mIoU guard record, which this fresh cache does not have.
    for c in sel.candidates:
        if c["precision"] == "int8":
            assert "guard" in c["skipped"]


def test_auto_choice_is_remembered(tmp_path, predictor):
    kwargs = dict(model=predictor.model, classes=predictor.classes, palette=predictor.palette.tolist(),
                  mean=predictor.mean_unit, std=predictor.std_unit, backend="auto", threads=1,
                  cache_dir=tmp_path / "cache")
    image = calibration_images((48, 96), count=1)[0]
    first = Predictor(**kwargs)
    a = first.predict(image, size="native")
    assert not first.selections[(48, 96)].cached
    second = Predictor(**kwargs)
    b = second.predict(image, size="native")
    sel = second.selections[(48, 96)]
    assert sel.cached and (b.backend, b.precision) == (a.backend, a.precision)
    assert [c for c in sel.candidates if c.get("chosen")]


def _guard_rec(p, backend, precision, size, *, agreement, miou_drop=0.0, engine=None):
    from segment.predict import cpu_kind, engine_version

    return {"key": p.key, "backend": backend, "precision": precision, "size": list(size),
            "engine": engine or engine_version(backend), "cpu": cpu_kind(), "dataset": "camvid", "split": "val",
            "images": 101, "agreement": agreement, "agreement_min": agreement, "miou_ref": 60.0,
            "miou": 60.0 - miou_drop, "miou_drop": miou_drop}


def test_shipped_guard_records_decide_auto_where_they_apply(tmp_path, predictor):
    import json

    from segment.presets import get_preset
    from segment.predict import guard_file_for

    ckpt = make_checkpoint(model=predictor.model, config=get_preset("default").config,
                           classes=predictor.classes, palette=predictor.palette.tolist(),
                           mean=predictor.mean_unit, std=predictor.std_unit)
    save_checkpoint(tmp_path / "m.pt", ckpt)
    size = (64, 128)
    p = Predictor.from_checkpoint(tmp_path / "m.pt", backend="auto", threads=1, cache_dir=tmp_path / "cache")
    other = Predictor.from_preset("default", calibrate_bn=False)
    records = [
        # torch fp32 agrees with itself on the bundled photos; a labelled-set record saying otherwise wins.
        _guard_rec(p, "torch", "fp32", size, agreement=0.97),
        # Records that do not apply here are ignored: another engine version, other weights, another size.
        _guard_rec(p, "onnxruntime", "fp32", size, agreement=0.5, engine="onnxruntime 0.0.1"),
        {**_guard_rec(p, "onnxruntime", "fp32", size, agreement=0.5), "key": other.key},
        _guard_rec(p, "onnxruntime", "fp32", (128, 256), agreement=0.5),
    ]
    guard_file_for(tmp_path / "m.pt").write_text(json.dumps({"records": records}))
    p = Predictor.from_checkpoint(tmp_path / "m.pt", backend="auto", threads=1, cache_dir=tmp_path / "cache")
    assert p.guard_file == tmp_path / "m.guard.json"
    p.predict(calibration_images(size, count=1)[0], size="native")
    rows = {(c["backend"], c["precision"]): c for c in p.selections[size].candidates}
    assert "labelled-set guard" in rows["torch", "fp32"]["skipped"] and "101 images of camvid val" in rows["torch", "fp32"]["guard"]
    assert "request_ms" not in rows["torch", "fp32"]  # ruled out by the record before it was built and timed
    assert "bundled photos" in rows["onnxruntime", "fp32"]["guard"] and "skipped" not in rows["onnxruntime", "fp32"]
    assert (p.selections[size].backend, p.selections[size].precision) != ("torch", "fp32")


def test_a_new_guard_record_reopens_the_remembered_choice(tmp_path, predictor):
    from segment.predict import save_guard_record

    kwargs = dict(model=predictor.model, classes=predictor.classes, palette=predictor.palette.tolist(),
                  mean=predictor.mean_unit, std=predictor.std_unit, backend="auto", threads=1,
                  cache_dir=tmp_path / "cache")
    size = (48, 96)
    image = calibration_images(size, count=1)[0]
    first = Predictor(**kwargs)
    first.predict(image, size="native")
    chosen = first.selections[size]
    spec_backend = chosen.backend
    # A labelled set now says the chosen backend changes too many labels at this size.
    save_guard_record(tmp_path / "cache", first.key, size, spec_backend, chosen.precision,
                      _guard_rec(first, spec_backend, chosen.precision, size, agreement=0.9))
    second = Predictor(**kwargs)
    second.predict(image, size="native")
    sel = second.selections[size]
    assert not sel.cached
    assert (sel.backend, sel.precision) != (chosen.backend, chosen.precision)


@pytest.fixture
def tiny_budget(monkeypatch):
    """"half" as a 64*128-pixel budget, so auto's measurements stay quick: its 2:1 bucket is 64x128."""
    import segment.sizes

    segment.sizes.buckets.cache_clear()
    monkeypatch.setitem(segment.sizes.SIZES, "half", (64, 128))
    yield segment.sizes.buckets("half")
    segment.sizes.buckets.cache_clear()


def test_auto_chooses_once_per_budget_and_reuses_it_for_other_buckets(tmp_path, predictor, tiny_budget, monkeypatch):
    from segment.backends import candidate_specs
    from segment.predict import save_guard_record
    from segment.sizes import plan_run

    kwargs = dict(model=predictor.model, classes=predictor.classes, palette=predictor.palette.tolist(),
                  mean=predictor.mean_unit, std=predictor.std_unit, backend="auto", threads=1,
                  cache_dir=tmp_path / "cache")
    wide = calibration_images((64, 128), count=1)[0]
    photo = calibration_images((90, 120), count=1)[0]  # 4:3
    bucket = plan_run(photo.shape[:2], "half").run_hw
    assert bucket != (64, 128) and bucket == tiny_budget["4:3"]

    first = Predictor(**kwargs)
    # Labelled-set records at the budget's 2:1 shape that every candidate passes (int8 left out).
    for spec in candidate_specs(threads=1):
        if spec.precision != "int8":
            save_guard_record(tmp_path / "cache", first.key, (64, 128), spec.backend, spec.precision,
                              _guard_rec(first, spec.backend, spec.precision, (64, 128), agreement=0.999))
    measured = []
    real_select = Predictor._select
    monkeypatch.setattr(Predictor, "_select", lambda self, size: measured.append(size) or real_select(self, size))
    a = first.predict(wide, size="half")
    b = first.predict(photo, size="half")
    assert measured == [(64, 128)]  # the 4:3 bucket did not redo the selection
    assert b.input_size == bucket and b.labels.shape == (90, 120)
    sel = first.selections[bucket]
    # On failure, the rows say why the 2:1 choice was passed over here (a guard record, a failed build).
    assert sel.reused_from == (64, 128) and (sel.backend, sel.precision) == (a.backend, a.precision), sel.candidates
    assert [c for c in sel.candidates if c.get("chosen")]

    # A later process whose first photo is 4:3 reuses the remembered choice without building the 2:1 shape.
    second = Predictor(**kwargs)
    c = second.predict(photo, size="half")
    assert (c.backend, c.precision) == (a.backend, a.precision)
    assert measured == [(64, 128)] and (64, 128) not in second._backends
    assert second.selections[bucket].cached and second.selections[bucket].reused_from == (64, 128)

    # A record measured at this bucket that fails the chosen backend: the next fastest that passed.
    chosen = next(r for r in first.selections[(64, 128)].candidates if r.get("chosen"))
    precision = chosen["requested_precision"]
    save_guard_record(tmp_path / "cache", first.key, bucket, a.backend, precision,
                      _guard_rec(first, a.backend, precision, bucket, agreement=0.9))
    third = Predictor(**kwargs)
    d = third.predict(photo, size="half")
    rows = {(r["backend"], r["precision"]): r for r in third.selections[bucket].candidates}
    assert "labelled-set guard at" in rows[a.backend, precision]["skipped"]
    assert (d.backend, d.precision) != (a.backend, a.precision) and measured == [(64, 128)]
