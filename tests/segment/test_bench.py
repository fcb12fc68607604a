"""``segment bench``: the timing protocol checked against hand-computed figures, the guard against 'segment eval'."""

import importlib.util
import json
import sys
import types

import numpy as np
import pytest
from PIL import Image

from segment.cli import main

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None

FIELDS = {"model", "paper_row", "backend", "precision", "size", "height", "width", "threads", "median_ms", "p90_ms",
          "madds", "request_median_ms", "request_p90_ms", "request_cpu_ms", "peer_ratio", "runs"}


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        status = main(["bench", "--size", "64x128", "--threads", "1", "--runs", "2", "--warmup", "1",
                       "--backend", "torch", "--backend", "onnxruntime", "--precision", "fp32",
                       "--peer", "smp", "--cache-dir", str(cache), "--json"])
    assert status == 0
    return json.loads(buf.getvalue())


def test_bench_json_rows(rows):
    assert isinstance(rows, list) and rows
    for r in rows:
        assert FIELDS <= set(r), FIELDS - set(r)
        assert r["size"] == "64x128" and (r["height"], r["width"]) == (64, 128) and r["threads"] == 1
        assert r["runs"] == 2 and r["madds"] > 0
    by_model = {}
    for r in rows:
        by_model.setdefault(r["model"], []).append(r)
    assert set(by_model) == {"torchvision_lraspp", "smp_deeplabv3plus_mobilenetv2", "mnv3-rf2-lraspp-f128"} | (
        {"torchvision_lraspp_openvino"} if HAS_OPENVINO else set())  # the OpenVINO peer: on by default
    peer = by_model["torchvision_lraspp"][0]
    assert peer["paper_row"] is None and (peer["backend"], peer["precision"]) == ("torch", "fp32") and peer["peer"]
    ours = by_model["mnv3-rf2-lraspp-f128"]
    assert {(r["backend"], r["precision"]) for r in ours} == {("torch", "fp32"), ("onnxruntime", "fp32")}
    for r in ours:
        assert r["paper_row"] == "T7-8" and not r["peer"]
        assert r["agreement"] >= 0.995  # fp32 in another engine: the same labels up to rounding
    # Independent of the timing: 9.5 G against 15.8 G multiply-adds at 1024x2048 (docs/inference.md).
    assert ours[0]["madds"] < peer["madds"]
    if HAS_OPENVINO:
        ov = by_model["torchvision_lraspp_openvino"]
        assert "fp32" in {r["precision"] for r in ov}
        for r in ov:
            assert r["peer"] and r["backend"] == "openvino" and r["paper_row"] is None
            assert (r["params"], r["madds"]) == (peer["params"], peer["madds"])  # the same model
        fastest = min(ov, key=lambda r: r["request_median_ms"])
        for r in ours:
            assert r["peer_ratio_ov"] == round(fastest["request_median_ms"] / r["request_median_ms"], 2)
            assert r["peer_ov_precision"] == fastest["precision"]


def test_median_and_p90_of_known_lists():
    from segment.bench import _stats

    assert _stats([5.0, 1.0, 4.0, 2.0, 3.0]) == pytest.approx((3.0, 4.6))  # p90: 4 + 0.6 * (5 - 4)
    assert _stats([10.0, 20.0]) == pytest.approx((15.0, 19.0))
    assert _stats([7.0]) == (7.0, 7.0)


class FakeClock:
    """Stands in for the ``time`` module: wall and CPU clocks that move only when a fake workload says."""

    def __init__(self):
        self.wall = self.cpu = 100.0

    def perf_counter(self):
        return self.wall

    def process_time(self):
        return self.cpu

    def work(self, wall_ms, cpu_ms=None):
        self.wall += wall_ms / 1e3
        self.cpu += (wall_ms if cpu_ms is None else cpu_ms) / 1e3


def test_round_robin_timing_of_fake_workloads(monkeypatch):
    from segment import bench

    clock = FakeClock()
    monkeypatch.setattr(bench, "time", types.SimpleNamespace(perf_counter=clock.perf_counter,
                                                             process_time=clock.process_time))
    calls = []

    def workload(name, kind, wall_ms, cpu_ms=None):
        times = iter(wall_ms)

        def fn():
            calls.append(f"{name}.{kind}")
            clock.work(next(times), cpu_ms)
        return fn

    # Peer: model 200 ms, request 300 ms (600 ms of CPU on two threads). Ours: model 50 ms, requests of
    # 100, 100 and 400 ms (one slow outlier), CPU equal to wall. One warm-up request each, not timed.
    configs = [
        bench.Config(row={"model": "peer"}, model_fn=workload("peer", "model", [200] * 3),
                     request_fn=workload("peer", "request", [999, 300, 300, 300], cpu_ms=600)),
        bench.Config(row={"model": "ours"}, model_fn=workload("ours", "model", [50] * 3),
                     request_fn=workload("ours", "request", [999, 100, 100, 400])),
    ]
    peer, ours = bench._time_round_robin(configs, runs=3, warmup=1)
    assert calls[:2] == ["peer.request", "ours.request"]  # warm-up first
    assert calls[2:] == ["peer.model", "peer.request", "ours.model", "ours.request"] * 3  # round-robin
    assert (peer["median_ms"], peer["p90_ms"], peer["request_median_ms"], peer["request_cpu_ms"]) == (200, 200, 300, 600)
    assert ours["median_ms"] == 50 and ours["request_median_ms"] == 100
    assert ours["request_p90_ms"] == pytest.approx(340.0)  # sorted 100, 100, 400: 100 + 0.8 * 300
    assert ours["runs"] == peer["runs"] == 3


def test_peer_ratios_from_known_timings():
    from segment.bench import PEERS, _add_peer_ratios

    def row(model, size, threads, request, model_ms, cpu):
        return {"model": model, "size": size, "threads": threads, "request_median_ms": request,
                "median_ms": model_ms, "request_cpu_ms": cpu}

    rows = [row(PEERS["torchvision"], "half", 1, 300.0, 200.0, 600.0), row("ours", "half", 1, 100.0, 50.0, 150.0),
            row("ours", "half", 2, 100.0, 50.0, 150.0),  # no peer at 2 threads in this run: no ratio
            row(PEERS["torchvision"], "full", 1, 1000.0, 900.0, 1000.0), row("ours", "full", 1, 80.0, 60.0, 125.0)]
    _add_peer_ratios(rows)
    assert (rows[1]["peer_ratio"], rows[1]["peer_ratio_model"], rows[1]["peer_ratio_cpu"]) == (3.0, 4.0, 4.0)
    assert "peer_ratio" not in rows[2]
    assert (rows[4]["peer_ratio"], rows[4]["peer_ratio_model"], rows[4]["peer_ratio_cpu"]) == (12.5, 15.0, 8.0)


def test_peer_ratio_ov_from_known_timings():
    """peer_ratio_ov: the faster OpenVINO peer row's request over ours, same size and threads; eager ratios unchanged."""
    from segment.bench import PEERS, _add_peer_ratios

    def row(model, size, threads, request, precision="fp32"):
        return {"model": model, "size": size, "threads": threads, "precision": precision, "request_median_ms": request,
                "median_ms": request, "request_cpu_ms": 2 * request}

    rows = [row(PEERS["torchvision"], "half", 1, 300.0),
            row(PEERS["openvino"], "half", 1, 80.0, "fp32"), row(PEERS["openvino"], "half", 1, 40.0, "bf16"),
            row("ours", "half", 1, 20.0, "mixed"),
            row(PEERS["torchvision"], "full", 1, 1500.0),
            row(PEERS["openvino"], "full", 1, 150.0, "fp32"),  # bf16 slower here: fp32 is the faster row
            row(PEERS["openvino"], "full", 1, 170.0, "bf16"),
            row("ours", "full", 1, 60.0, "mixed"),
            row(PEERS["torchvision"], "full", 2, 900.0), row("ours", "full", 2, 50.0)]  # no OpenVINO peer at 2 threads
    _add_peer_ratios(rows)
    ours_half, ours_full, ours_full2 = rows[3], rows[7], rows[9]
    assert (ours_half["peer_ratio"], ours_half["peer_ratio_ov"], ours_half["peer_ov_precision"]) == (15.0, 2.0, "bf16")
    rows[1]["request_cpu_ms"], rows[2]["request_cpu_ms"] = 60.0, 100.0  # CPU: of the faster request's row, not the least
    _add_peer_ratios(rows)
    assert ours_half["peer_ratio_ov_cpu"] == 2.5  # 100 / 40
    assert (ours_full["peer_ratio"], ours_full["peer_ratio_ov"], ours_full["peer_ov_precision"]) == (25.0, 2.5, "fp32")
    assert ours_full2["peer_ratio"] == 18.0 and "peer_ratio_ov" not in ours_full2
    # The OpenVINO peer rows against the eager peer and against their faster sibling.
    assert (rows[1]["peer_ratio"], rows[1]["peer_ratio_ov"]) == (3.75, 0.5)
    assert (rows[2]["peer_ratio"], rows[2]["peer_ratio_ov"]) == (7.5, 1.0)


def test_table_prints_the_openvino_peer_column():
    from segment.bench import format_table

    base = {"backend": "openvino", "size": "half", "threads": 2, "median_ms": 10.0, "p90_ms": 11.0,
            "request_median_ms": 12.0, "request_p90_ms": 13.0, "request_cpu_ms": 20.0}
    rows = [{**base, "model": "ours", "precision": "mixed", "peer_ratio": 11.46, "peer_ratio_ov": 2.27,
             "peer_ratio_cpu": 12.6, "agreement": 0.9986},
            {**base, "model": "theirs", "precision": "fp32", "peer_ratio": 7.91}]  # no OpenVINO peer measured
    lines = format_table(rows).splitlines()
    head = lines[0].split("  ")
    head = [h.strip() for h in head if h.strip()]
    assert head[9:11] == ["x peer", "x peer OV"]
    cells = lines[2].split()
    assert cells[9:11] == ["11.46", "2.27"]
    assert lines[3].split()[9:11] == ["7.91", "-"]
    assert any("x peer OV" in line for line in lines[4:])  # and the footnote says what it is


@pytest.mark.skipif(not HAS_OPENVINO, reason="OpenVINO is not installed")
def test_openvino_peer_labels_are_the_eager_peers_argmax(tmp_path):
    """The OpenVINO peer's graph (normalization, model, argmax) gives the eager peer's labels at fp32, same weights."""
    from segment.backends.openvino_backend import _core
    from segment.bench import _peer_model, bench_input, openvino_peer_configs, peer_config

    size = (128, 256)
    image, _ = bench_input(size)
    peer = _peer_model("torchvision")
    eager = peer_config("torchvision", "128x256", size, 1, image, built=peer).request_fn()
    assert eager.shape == size and len(np.unique(eager)) >= 5  # BN measured on scenes: the labels vary
    configs = openvino_peer_configs("128x256", size, 1, image, model=peer[0], cache_dir=tmp_path, reference=eager)
    by_precision = {c.row["precision"]: c for c in configs}
    fp32 = by_precision["fp32"]
    labels = fp32.request_fn()
    assert labels.shape == size and labels.dtype == np.uint8
    assert np.mean(labels == eager) >= 0.999  # a near-tied pixel may flip, no more
    assert fp32.row["agreement"] == pytest.approx(np.mean(labels == eager))
    assert (fp32.row["model"], fp32.row["backend"], fp32.row["peer"]) == ("torchvision_lraspp_openvino", "openvino", True)
    has_bf16 = "BF16" in _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert set(by_precision) == ({"fp32", "bf16"} if has_bf16 else {"fp32"})  # each labelled by what really ran
    # Exported once, into the cache folder: a second build reads the IR, it does not export again.
    xml = next(tmp_path.glob("peer-torchvision_lraspp/*/128x256/labels.ir/model.xml"))
    stamp = xml.stat().st_mtime_ns
    again = openvino_peer_configs("128x256", size, 1, image, model=_peer_model("torchvision")[0], cache_dir=tmp_path)
    assert xml.stat().st_mtime_ns == stamp and len(list(tmp_path.glob("peer-*/*"))) == 1
    assert np.array_equal(again[0].request_fn(), labels)  # seeded init: the same weights every time


def test_openvino_peer_skipped_with_a_note_when_openvino_is_missing(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "openvino", None)  # find_spec -> None, import -> ImportError
    args = ["bench", "--size", "48x96", "--threads", "1", "--runs", "1", "--warmup", "0", "--backend", "torch",
            "--precision", "fp32", "--cache-dir", str(tmp_path)]
    assert main(args + ["--json"]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert "skipping the OpenVINO rows of the torchvision peer" in captured.err and "not installed" in captured.err
    assert {r["model"] for r in rows} == {"torchvision_lraspp", "mnv3-rf2-lraspp-f128"}
    assert all("peer_ratio_ov" not in r for r in rows) and all("peer_ratio" in r for r in rows)
    assert main(args + ["--peer", "openvino"]) == 2  # asked for by name: an error, not a note
    assert "OpenVINO is not installed" in capsys.readouterr().err


def test_bench_table_and_errors(capsys, tmp_path):
    assert main(["bench", "--size", "48x96", "--threads", "1", "--runs", "1", "--warmup", "0",
                 "--backend", "torch", "--precision", "fp32", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "torchvision_lraspp" in out and "x peer" in out and "x peer OV" in out
    assert ("torchvision_lraspp_openvino" in out) == HAS_OPENVINO
    assert main(["bench", "--size", "48x96", "--threads", "1", "--runs", "1", "--warmup", "0", "--backend", "torch",
                 "--precision", "fp32", "--cache-dir", str(tmp_path), "--no-peer-openvino"]) == 0
    assert "torchvision_lraspp_openvino" not in capsys.readouterr().out
    assert main(["bench", "--size", "48x96", "--peer", "openvino", "--no-peer-openvino"]) == 2
    assert main(["bench", "--size", "tiny"]) == 2
    assert "--size" in capsys.readouterr().err
    assert main(["bench", "--preset", "nonexistent", "--size", "48x96"]) == 2
    capsys.readouterr()
    assert main(["bench", "--size", "48x96", "--int8-float", "stem,heads"]) == 2
    assert "--int8-float" in capsys.readouterr().err


def _cityscapes_checkpoint(path):
    """A random default-preset model with street-scene BN statistics, in the Cityscapes label space."""
    from data.labels import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE
    from segment.checkpoint import make_checkpoint, save_checkpoint
    from segment.predict import Predictor

    base = Predictor.from_preset("default", threads=1)
    save_checkpoint(path, make_checkpoint(model=base.model, config=base.config, classes=CITYSCAPES_CLASSES,
                                          palette=CITYSCAPES_PALETTE, mean=base.mean_unit, std=base.std_unit))
    return path


def _folder_set_scoring_camvid_classes(root, n=3, size=(64, 128)):
    """Synthetic street scenes as a folder dataset of the 19 Cityscapes classes that scores only CamVid's 11."""
    from data.labels import CAMVID_TO_CITYSCAPES, CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, labelid_to_trainid_lut
    from data.synthetic import draw_scene
    from segment.atomic import write_json
    from segment.images import write_png

    lut = labelid_to_trainid_lut()
    for i in range(n):
        image, labelids = draw_scene(size=size, seed=(0, 1, i))
        write_png(root / "val" / "images" / f"{i}.png", image)
        write_png(root / "val" / "labels" / f"{i}.png", lut[labelids])
    write_json(root / "classes.json", {
        "classes": [{"name": c, "color": list(p)} for c, p in zip(CITYSCAPES_CLASSES, CITYSCAPES_PALETTE)],
        "eval": list(CAMVID_TO_CITYSCAPES)})
    return root


def test_guard_miou_is_segment_evals_miou(tmp_path):
    """The guard scores the labels it compares as 'segment eval' does: over the dataset's scored classes only.

    Averaging over every class present instead (a random model predicts unscored ones too) gives another value.
    """
    import contextlib
    import io

    root = _folder_set_scoring_camvid_classes(tmp_path / "set")
    ckpt = _cityscapes_checkpoint(tmp_path / "m.pt")
    bench_out, eval_out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(bench_out):
        assert main(["bench", "--checkpoint", str(ckpt), "--size", "64x128", "--threads", "1", "--runs", "1",
                     "--warmup", "0", "--backend", "torch", "--precision", "fp32", "--cache-dir",
                     str(tmp_path / "cache"), "--guard-data", str(root), "--guard-dataset", "folder",
                     "--guard-out", str(tmp_path / "m.guard.json"), "--json"]) == 0
    with contextlib.redirect_stdout(eval_out):
        assert main(["eval", "--checkpoint", str(ckpt), "--dataset", "folder", "--data-root", str(root),
                     "--size", "native", "--workers", "0", "--json"]) == 0
    row = next(r for r in json.loads(bench_out.getvalue()) if not r["peer"])
    evaluated = json.loads(eval_out.getvalue().strip().splitlines()[-1])
    assert row["guard_images"] == evaluated["images"] == 3
    assert len(evaluated["per_class"]) == 11
    # Two normalization codes (albumentations', numpy's) may round a rare pixel apart: a tenth of a point.
    assert row["miou_ref"] == pytest.approx(100 * evaluated["miou"], abs=0.1)
    # torch's fast graph (BN folded, channels_last) against the plain model: the same labels up to rounding.
    assert row["guard_agreement"] >= 0.995 and abs(row["miou_drop"]) < 0.5
    shipped = json.loads((tmp_path / "m.guard.json").read_text())["records"]
    assert [(r["backend"], r["precision"], r["miou_drop"]) for r in shipped] == [("torch", "fp32", row["miou_drop"])]
    assert "root" not in shipped[0]  # a local folder means nothing where the file is shipped


@pytest.mark.parametrize("drop,made_so,considered,agreement", [
    (0.6, True, False, 0.999), (0.1, True, True, 0.999), (0.1, False, False, 0.999),
    (0.1, True, True, 0.99)])  # int8 is judged by its mIoU: 99% agreement does not rule it out
def test_auto_considers_int8_exactly_when_its_record_is_under_half_a_point(tmp_path, monkeypatch, drop, made_so,
                                                                          considered, agreement):
    from segment import predict
    from segment.backends import BackendSpec, int8_quantizer
    from segment.predict import MAX_INT8_MIOU_DROP, Predictor, cpu_kind, engine_version, save_guard_record

    assert MAX_INT8_MIOU_DROP == 0.5
    ckpt = _cityscapes_checkpoint(tmp_path / "m.pt")
    monkeypatch.setattr(predict, "candidate_specs", lambda threads=None: [
        BackendSpec(backend="onnxruntime", precision="int8", threads=threads),
        BackendSpec(backend="torch", precision="fp32", threads=threads)])
    pred = Predictor.from_checkpoint(ckpt, backend="auto", threads=1, cache_dir=tmp_path / "cache")
    # made_so=False: the record is of an int8 model calibrated on other photos, which it does not stand for.
    other = tmp_path / "photos"
    if not made_so:
        other.mkdir()
        Image.fromarray(np.full((8, 8, 3), 7, np.uint8)).save(other / "a.png")
    save_guard_record(tmp_path / "cache", pred.key, (64, 128), "onnxruntime", "int8", {
        "key": pred.key, "backend": "onnxruntime", "precision": "int8", "size": [64, 128],
        "engine": engine_version("onnxruntime"), "cpu": cpu_kind(), "dataset": "synthetic", "split": "val",
        "images": 2, "agreement": agreement, "miou_drop": drop,
        "quantizer": int8_quantizer("onnxruntime", None if made_so else other)})
    pred.predict(np.full((64, 128, 3), 100, np.uint8), size=(64, 128))
    int8 = next(c for c in pred.selections[(64, 128)].candidates if c["precision"] == "int8")
    if not made_so:
        assert "no mIoU guard record" in int8["skipped"] and "request_ms" not in int8
        return
    assert "2 images of synthetic val" in int8["guard"]
    if considered:
        assert "skipped" not in int8 and int8["request_ms"] > 0  # built and timed
    else:
        assert "mIoU drop +0.60" in int8["skipped"] and "request_ms" not in int8  # ruled out unbuilt


def test_paper_row_is_found_by_architecture():
    import dataclasses

    from segment.bench import _paper_row_of
    from segment.presets import get_preset

    config = get_preset("default").config
    assert _paper_row_of(config) == "T7-8"
    assert _paper_row_of(dataclasses.replace(config, train_crop=320)) == "T7-8"  # other crop, same row
    assert _paper_row_of(get_preset("small").config) == "T7-11"
    assert _paper_row_of(dataclasses.replace(config, head_channels=64)) is None


def test_bench_input_follows_the_size_rule(tmp_path):
    """--size half/full: the synthetic scene is 2:1 (the paper's inputs); a --image keeps its aspect ratio."""
    from PIL import Image

    from segment.bench import bench_input

    image, plan = bench_input("half")
    assert image.shape == (512, 1024, 3) and plan.run_hw == plan.valid_hw == (512, 1024)
    path = tmp_path / "phone.png"
    Image.fromarray(np.zeros((120, 160, 3), np.uint8)).save(path)
    image, plan = bench_input("half", str(path))
    assert plan.run_hw == (512, 704) and image.shape == (512, 683, 3) and plan.valid_hw == (512, 683)
    image, plan = bench_input("full", str(path))
    assert plan.run_hw == (1024, 1376) and image.shape == (1024, 1365, 3) and plan.valid_hw == (1024, 1365)
    image, plan = bench_input((64, 128), str(path))  # an explicit HxW is exactly that
    assert image.shape == (64, 128, 3) and plan.run_hw == plan.valid_hw == (64, 128)


def test_guard_file_keeps_the_current_weights_records_only(tmp_path):
    from segment.bench import write_guard_file

    path = tmp_path / "m.guard.json"

    def rec(key, backend, size):
        return {"key": key, "backend": backend, "precision": "fp32", "size": list(size), "engine": "e", "cpu": "c",
                "agreement": 1.0, "root": "/data"}

    write_guard_file(str(path), [rec("old", "openvino", (512, 1024)), rec("old", "torch", (512, 1024))])
    write_guard_file(str(path), [rec("new", "openvino", (512, 704))])
    write_guard_file(str(path), [rec("new", "torch", (512, 704))])
    records = json.loads(path.read_text())["records"]
    assert sorted((r["key"], r["backend"]) for r in records) == [("new", "openvino"), ("new", "torch")]
    assert all("root" not in r for r in records)
