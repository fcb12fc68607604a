"""``segment bench``: the timing protocol checked against hand-computed figures, the guard against 'segment eval'."""

import json
import types

import numpy as np
import pytest

from segment.cli import main

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
    assert set(by_model) == {"torchvision_lraspp", "smp_deeplabv3plus_mobilenetv2", "mnv3-rf2-lraspp-f128"}
    peer = by_model["torchvision_lraspp"][0]
    assert peer["paper_row"] is None and (peer["backend"], peer["precision"]) == ("torch", "fp32") and peer["peer"]
    ours = by_model["mnv3-rf2-lraspp-f128"]
    assert {(r["backend"], r["precision"]) for r in ours} == {("torch", "fp32"), ("onnxruntime", "fp32")}
    for r in ours:
        assert r["paper_row"] == "T7-8" and not r["peer"]
        assert r["agreement"] >= 0.995  # fp32 in another engine: the same labels up to rounding
    # Independent of the timing: 9.5 G against 15.8 G multiply-adds at 1024x2048 (docs/inference.md).
    assert ours[0]["madds"] < peer["madds"]


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


def test_bench_table_and_errors(capsys, tmp_path):
    assert main(["bench", "--size", "48x96", "--threads", "1", "--runs", "1", "--warmup", "0",
                 "--backend", "torch", "--precision", "fp32", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "torchvision_lraspp" in out and "x peer" in out
    assert main(["bench", "--size", "tiny"]) == 2
    assert "--size" in capsys.readouterr().err
    assert main(["bench", "--preset", "nonexistent", "--size", "48x96"]) == 2


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


@pytest.mark.parametrize("drop,considered", [(0.6, False), (0.1, True)])
def test_auto_considers_int8_exactly_when_its_record_is_under_half_a_point(tmp_path, monkeypatch, drop, considered):
    from segment import predict
    from segment.backends import BackendSpec
    from segment.predict import MAX_INT8_MIOU_DROP, Predictor, cpu_kind, engine_version, save_guard_record

    assert MAX_INT8_MIOU_DROP == 0.5
    ckpt = _cityscapes_checkpoint(tmp_path / "m.pt")
    monkeypatch.setattr(predict, "candidate_specs", lambda threads=None: [
        BackendSpec(backend="onnxruntime", precision="int8", threads=threads),
        BackendSpec(backend="torch", precision="fp32", threads=threads)])
    pred = Predictor.from_checkpoint(ckpt, backend="auto", threads=1, cache_dir=tmp_path / "cache")
    save_guard_record(tmp_path / "cache", pred.key, (64, 128), "onnxruntime", "int8", {
        "key": pred.key, "backend": "onnxruntime", "precision": "int8", "size": [64, 128],
        "engine": engine_version("onnxruntime"), "cpu": cpu_kind(), "dataset": "synthetic", "split": "val",
        "images": 2, "agreement": 0.999, "miou_drop": drop})
    pred.predict(np.full((64, 128, 3), 100, np.uint8), size=(64, 128))
    int8 = next(c for c in pred.selections[(64, 128)].candidates if c["precision"] == "int8")
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
    assert plan.run_hw == (608, 832) and image.shape == (608, 811, 3) and plan.valid_hw == (608, 811)
    image, plan = bench_input("full", str(path))
    assert plan.run_hw == plan.valid_hw == (1248, 1664) and image.shape == (1248, 1664, 3)
    image, plan = bench_input((64, 128), str(path))  # an explicit HxW is exactly that
    assert image.shape == (64, 128, 3) and plan.run_hw == plan.valid_hw == (64, 128)
