"""``backend="auto"`` in the Predictor: the live re-check, serving a default while selecting, forcing.

The candidates are two fake backends around one real torch fp32 backend (so the
accuracy guard passes them and the labels are real), each adding a sleep to every
run: "flaky" is fast while measured and then slow on real requests, "steady" always
costs the same. The gaps are tens of milliseconds, well above the noise of a busy
machine.
"""

import json
import logging
import threading
import time

import numpy as np
import pytest
import torch

from segment.autoselect import AutoConfig, MeasureConfig, RecheckConfig
from segment.backends import Backend, BackendSpec, build_backend
from segment.predict import Predictor
from segment.quantize import calibration_images

SIZE = (64, 128)
SPECS = [BackendSpec(backend="flaky", precision="fp32"), BackendSpec(backend="steady", precision="fp32")]


class Delayed(Backend):
    """A real backend that sleeps ``delay()`` seconds before each run; ``gate`` (an Event) held
    closed blocks every run of this instance until it opens."""

    def __init__(self, inner: Backend, *, name: str, delay) -> None:
        self.inner, self.name, self.delay = inner, name, delay
        self.precision, self.size, self.threads = inner.precision, inner.size, inner.threads
        self.gate: threading.Event | None = None

    def run(self, image):
        if self.gate is not None:
            self.gate.wait(30)
        time.sleep(self.delay())
        return self.inner.run(image)


@pytest.fixture(scope="module")
def model_parts():
    torch.manual_seed(0)
    p = Predictor.from_preset("small", threads=1)
    return dict(model=p.model, classes=p.classes, palette=p.palette.tolist(), mean=p.mean_unit, std=p.std_unit)


@pytest.fixture
def fakes(monkeypatch):
    """Fake candidates in place of the real ones; ``state`` switches flaky's slowness, ``built``
    lists every instance made, ``gates`` (backend name -> Event) holds builds of that backend."""
    state = {"flaky_slow": False}
    delays = {"flaky": lambda: 0.15 if state["flaky_slow"] else 0.0, "steady": lambda: 0.05}
    built: list[Delayed] = []
    gates: dict[str, threading.Event] = {}

    def build(self, spec, size):
        if spec.backend in gates:
            gates[spec.backend].wait(30)
        inner = build_backend(self.model, mean=self.mean_unit, std=self.std_unit, size=size,
                              spec=BackendSpec(backend="torch", precision="fp32", threads=1), cache_dir=self.cache_dir)
        built.append(Delayed(inner, name=spec.backend, delay=delays[spec.backend]))
        return built[-1]

    monkeypatch.setattr("segment.predict.candidate_specs", lambda threads=None: list(SPECS))
    monkeypatch.setattr(Predictor, "build", build)
    monkeypatch.setattr(Predictor, "default_spec", lambda self, size: BackendSpec(backend="steady", precision="fp32"))
    return {"state": state, "built": built, "gates": gates}


def auto_config(**kwargs) -> AutoConfig:
    """Quick measurements and a re-check allowed after 4 requests (the real defaults: 64 and 5 min)."""
    return AutoConfig(measure=MeasureConfig(min_rounds=3, max_rounds=6),
                      live=RecheckConfig(window=6, min_samples=4, min_requests_between=4, min_seconds_between=0.0),
                      **kwargs)


def make(model_parts, tmp_path, **auto) -> Predictor:
    return Predictor(**model_parts, backend="auto", threads=1, cache_dir=tmp_path / "cache", auto=auto_config(**auto))


def saved(p: Predictor, size=SIZE) -> dict:
    return json.loads(p._selection_path(size).read_text())


def test_a_backend_that_slows_down_on_real_requests_is_switched_away_from(model_parts, tmp_path, fakes, caplog):
    image = calibration_images(SIZE, count=1)[0]
    p = make(model_parts, tmp_path)
    assert p.predict(image, size=SIZE).backend == "flaky"  # 0 ms added against 50: measured fastest
    first = saved(p)
    assert first["backend"] == "flaky" and first["reason"] == "first measurement" and len(first["history"]) == 1

    # While it stays fast nothing is re-measured (its running median is under 1.25 x steady's figure).
    assert {p.predict(image, size=SIZE).backend for _ in range(8)} == {"flaky"}
    assert len(saved(p)["history"]) == 1

    fakes["state"]["flaky_slow"] = True  # now 150 ms on every run, measured or not
    caplog.set_level(logging.INFO, logger="segment.predict")
    served = [p.predict(image, size=SIZE).backend for _ in range(8)]
    assert "steady" in served and served.index("steady") <= 5, served  # a window of 4, then the re-check
    assert served[served.index("steady"):] == ["steady"] * (8 - served.index("steady"))

    sel = p.selections[SIZE]
    assert (sel.backend, sel.reason) == ("steady", "re-check switch")
    record = saved(p)
    assert record["backend"] == "steady" and record["reason"] == "re-check switch"
    switch = record["history"][-1]
    assert switch["from"] == "flaky fp32" and switch["to"] == "steady fp32" and "running median" in switch["why"]
    steady_before = next(r["request_ms"] for r in first["candidates"] if r["backend"] == "steady")
    assert switch["running_median_ms"] > 1.25 * steady_before and switch["measured_before_ms"] < 50
    assert switch["figures"]["flaky fp32"] > switch["figures"]["steady fp32"]
    assert record["chosen_utc"] == switch["utc"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("switched from flaky fp32" in w and "to steady fp32" in w for w in warnings), warnings

    # Settled: steady's running median is far under 1.25 x flaky's new figure, so no more re-checks.
    assert {p.predict(image, size=SIZE).backend for _ in range(8)} == {"steady"}
    assert len(saved(p)["history"]) == 2
    # And the switch is what the next process starts with.
    later = make(model_parts, tmp_path)
    assert later.predict(image, size=SIZE).backend == "steady" and later.selections[SIZE].cached


def test_the_recheck_is_bounded_by_its_cooldown(model_parts, tmp_path, fakes):
    image = calibration_images(SIZE, count=1)[0]
    p = Predictor(**model_parts, backend="auto", threads=1, cache_dir=tmp_path / "cache",
                  auto=AutoConfig(measure=MeasureConfig(min_rounds=3, max_rounds=6),
                                  live=RecheckConfig(window=4, min_samples=4, min_requests_between=4,
                                                     min_seconds_between=3600.0)))
    assert p.predict(image, size=SIZE).backend == "flaky"
    fakes["state"]["flaky_slow"] = True
    assert {p.predict(image, size=SIZE).backend for _ in range(6)} == {"flaky"}  # slow, but measured < 1 h ago
    assert len(saved(p)["history"]) == 1


def test_background_start_serves_the_default_at_once_and_swaps_when_measured(model_parts, tmp_path, fakes):
    image = calibration_images(SIZE, count=1)[0]
    fakes["gates"]["flaky"] = gate = threading.Event()  # holds the background selection at its first build
    p = make(model_parts, tmp_path, start="background")
    lines = []
    p.listeners.append(lines.append)
    first = p.predict(image, size=SIZE)
    assert first.backend == "steady"  # the default, without waiting for a measurement
    state = p.serving_state(SIZE)
    assert state.how == "default" and state.measuring and "measured in the background" in state.describe()

    # A request in flight on the default when the swap happens finishes on the default.
    serving = fakes["built"][0]
    serving.gate = hold = threading.Event()
    in_flight = {}
    thread = threading.Thread(target=lambda: in_flight.update(p=p.predict(image, size=SIZE)))
    thread.start()
    gate.set()
    assert p.wait_background(timeout=60)
    assert p._backends[SIZE].name == "flaky"  # swapped while that request was still running
    hold.set()
    thread.join(30)
    assert in_flight["p"].backend == "steady"

    assert p.predict(image, size=SIZE).backend == "flaky"
    state = p.serving_state(SIZE)
    assert (state.how, state.measuring) == ("measured", False) and "first measurement" in state.describe()
    assert any("flaky fp32 (first measurement" in line for line in lines), lines
    assert saved(p)["backend"] == "flaky"


def test_after_first_start_runs_the_first_request_on_the_default_and_selects_before_the_second(
        model_parts, tmp_path, fakes):
    image = calibration_images(SIZE, count=1)[0]
    p = make(model_parts, tmp_path, start="after_first")
    assert p.predict(image, size=SIZE).backend == "steady" and p.selections == {}
    assert p.serving_state(SIZE).how == "default"
    assert p.predict(image, size=SIZE).backend == "flaky"
    assert p.selections[SIZE].reason == "first measurement" and p._worker is None  # in-line, no thread


def test_reselect_measures_again_and_says_it_was_forced(model_parts, tmp_path, fakes):
    image = calibration_images(SIZE, count=1)[0]
    make(model_parts, tmp_path).predict(image, size=SIZE)
    again = make(model_parts, tmp_path, reselect=True)
    again.predict(image, size=SIZE)
    sel = again.selections[SIZE]
    assert not sel.cached and sel.reason == "forced"
    assert [e["reason"] for e in saved(again)["history"]] == ["first measurement", "forced"]
    # Once per size and process: the next request is served, not measured again.
    again.predict(image, size=SIZE)
    assert len(saved(again)["history"]) == 2


def test_default_spec_follows_the_guard_records(model_parts, tmp_path, monkeypatch):
    """OpenVINO at bf16 where a guard record for the budget passes, fp32 where none applies;
    torch fp32 without OpenVINO."""
    from segment.predict import cpu_kind, engine_version, save_guard_record

    p = Predictor(**model_parts, backend="auto", threads=1, cache_dir=tmp_path / "cache")
    monkeypatch.setattr("segment.predict.available_backends", lambda: ["torch", "openvino"])
    monkeypatch.setattr("segment.predict.candidate_specs", lambda threads=None: [
        BackendSpec(backend="openvino", precision=x) for x in ("fp32", "bf16", "mixed")])
    assert (p.default_spec(SIZE).backend, p.default_spec(SIZE).precision) == ("openvino", "fp32")
    for precision, agreement in (("bf16", 0.99), ("mixed", 0.999)):
        save_guard_record(tmp_path / "cache", p.key, SIZE, "openvino", precision,
                          {"key": p.key, "backend": "openvino", "precision": precision, "size": list(SIZE),
                           "engine": engine_version("openvino"), "cpu": cpu_kind(), "dataset": "camvid",
                           "split": "val", "images": 10, "agreement": agreement, "miou_drop": 0.0})
    assert p.default_spec(SIZE).precision == "mixed"  # bf16's record fails the 99.5% guard
    monkeypatch.setattr("segment.predict.available_backends", lambda: ["torch"])
    assert (p.default_spec(SIZE).backend, p.default_spec(SIZE).precision) == ("torch", "fp32")


def test_labels_do_not_depend_on_which_candidate_served(model_parts, tmp_path, fakes):
    image = calibration_images(SIZE, count=1)[0]
    p = make(model_parts, tmp_path, start="after_first")
    a = p.predict(image, size=SIZE)
    b = p.predict(image, size=SIZE)
    assert a.backend != b.backend and np.array_equal(a.labels, b.labels)


@pytest.fixture
def checkpoint(tmp_path, model_parts):
    from segment.checkpoint import make_checkpoint, save_checkpoint
    from segment.presets import get_preset

    path = tmp_path / "m.pt"
    save_checkpoint(path, make_checkpoint(model=model_parts["model"], config=get_preset("small").config,
                                          classes=model_parts["classes"], palette=model_parts["palette"],
                                          mean=model_parts["mean"], std=model_parts["std"]))
    return path


def test_segment_predict_runs_the_first_image_on_the_default_then_the_choice(tmp_path, checkpoint, fakes,
                                                                             monkeypatch, capsys):
    from PIL import Image

    from segment.cli import main

    monkeypatch.setenv("MNV3_LRASPP_CACHE", str(tmp_path / "cache"))
    # Three images are too few to be worth a measurement by the run-length rule (tested below and in
    # test_predict_cli.py); here the run counts as long.
    monkeypatch.setattr("segment.commands.predict._skip_measurement_if_run_is_short", lambda *a, **k: None)
    for i in range(3):
        (tmp_path / "in").mkdir(exist_ok=True)
        Image.fromarray(calibration_images(SIZE, count=1)[0]).save(tmp_path / "in" / f"{i}.png")
    args = ["predict", "--checkpoint", str(checkpoint), str(tmp_path / "in"), "--out", str(tmp_path / "out"),
            "--size", f"{SIZE[0]}x{SIZE[1]}"]
    assert main(args) == 0
    assert "backend flaky fp32 for 2 images, steady fp32 for 1 image" in capsys.readouterr().err
    assert len(list((tmp_path / "cache").rglob("auto-*.json"))) == 1  # the choice, remembered

    # --reselect measures again (the first image again on the default) and says so in the file.
    assert main([*args, "--reselect"]) == 0
    assert "backend flaky fp32 for 2 images, steady fp32 for 1 image" in capsys.readouterr().err
    assert main([*args[:-2], "--size", "half", "--backend", "torch", "--reselect"]) == 2
    assert "needs --backend auto" in capsys.readouterr().err

    # segment backends: the choice, when, why and the figures; --reselect rewrites it.
    assert main(["backends", "--checkpoint", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    assert f"{SIZE[0]}x{SIZE[1]}: flaky fp32 - forced" in out and "<- chosen" in out
    assert "steady fp32" in out and "earlier: " in out and "first measurement" in out
    assert main(["backends", "--checkpoint", str(checkpoint), "--reselect", f"{SIZE[0]}x{SIZE[1]}", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    (row,) = rows
    assert row["size"] == list(SIZE) and row["reason"] == "forced" and len(row["history"]) == 3
    assert {c["backend"]: c["request_ms"] for c in row["candidates"]}["steady"] > 40


def test_segment_predict_skips_the_measurement_of_a_run_shorter_than_it(tmp_path, checkpoint, fakes, monkeypatch,
                                                                      capsys):
    """Each build takes 0.5 s, two candidates 1 s: two images of 0.05 s after the first stay on the
    default, and nothing is remembered (the next, longer run measures)."""
    from PIL import Image

    from segment.cli import main

    build = Predictor.build

    def slow_build(self, spec, size):
        time.sleep(0.5)
        return build(self, spec, size)

    monkeypatch.setattr(Predictor, "build", slow_build)
    monkeypatch.setenv("MNV3_LRASPP_CACHE", str(tmp_path / "cache"))
    (tmp_path / "in").mkdir()
    for i in range(3):
        Image.fromarray(calibration_images(SIZE, count=1)[0]).save(tmp_path / "in" / f"{i}.png")
    assert main(["predict", "--checkpoint", str(checkpoint), str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                 "--size", f"{SIZE[0]}x{SIZE[1]}"]) == 0
    err = capsys.readouterr().err
    assert "backend steady fp32 for 3 images" in err
    assert "auto did not measure its candidates: the 2 image(s) left" in err
    assert f"'segment backends --checkpoint {checkpoint} --reselect {SIZE[0]}x{SIZE[1]}', measures them" in err
    assert [b.name for b in fakes["built"]] == ["steady"]  # the default alone was built
    assert not list((tmp_path / "cache").rglob("auto-*.json"))
