"""The demo with ``--backend auto``: the page opens before any measurement, each result says which
backend serves and whether a faster one is being measured, and the choice swaps in when measured."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

from segment.backends import Backend, BackendSpec, build_backend
from segment.predict import Predictor
from serve.app import DemoHandlers, DemoSettings, Upload






class Delayed(Backend):
    """A real torch backend that sleeps ``delay`` seconds before each run."""

    def __init__(self, inner: Backend, *, name: str, delay: float) -> None:
        self.inner, self.name, self.delay = inner, name, delay
        self.precision, self.size, self.threads = inner.precision, inner.size, inner.threads

    def run(self, image):
        time.sleep(self.delay)
        return self.inner.run(image)


@pytest.fixture
def tiny_half(monkeypatch):
    """"half" as a 64*128-pixel budget, so measuring candidates takes a moment."""
    import segment.sizes

    segment.sizes.buckets.cache_clear()
    monkeypatch.setitem(segment.sizes.SIZES, "half", (64, 128))
    yield (64, 128)
    segment.sizes.buckets.cache_clear()


@pytest.fixture
def fake_candidates(monkeypatch):
    """"fast" (no delay) and "slow" (40 ms) around torch fp32; "slow" is the default. Builds of
    "fast" wait for the returned Event, so the test decides when the background selection ends."""
    gate = threading.Event()
    delays = {"fast": 0.0, "slow": 0.04}

    def build(self, spec, size):
        if spec.backend == "fast":
            gate.wait(30)
        inner = build_backend(self.model, mean=self.mean_unit, std=self.std_unit, size=size,
                              spec=BackendSpec(backend="torch", precision="fp32", threads=1), cache_dir=self.cache_dir)
        return Delayed(inner, name=spec.backend, delay=delays[spec.backend])

    monkeypatch.setattr("segment.predict.candidate_specs", lambda threads=None: [
        BackendSpec(backend="fast", precision="fp32"), BackendSpec(backend="slow", precision="fp32")])
    monkeypatch.setattr(Predictor, "build", build)
    monkeypatch.setattr(Predictor, "default_spec", lambda self, size: BackendSpec(backend="slow", precision="fp32"))
    return gate


def test_each_result_says_what_serves_and_the_choice_swaps_in(small_checkpoint, tmp_path, monkeypatch,
                                                              tiny_half, fake_candidates):
    from segment.autoselect import AutoConfig, MeasureConfig

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    predictor = Predictor.from_checkpoint(small_checkpoint, backend="auto", threads=1, cache_dir=tmp_path / "cache",
                                          auto=AutoConfig(start="background", measure=MeasureConfig(max_rounds=6)))
    handlers = DemoHandlers(predictor=predictor, settings=DemoSettings())
    photo = tmp_path / "street.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 128, 3), dtype=np.uint8)).save(photo)
    upload = Upload(path=str(photo), data=None, name="street.png")
    try:
        summary, details = _summary_and_details(handlers.segment(upload, "half"))
        assert details["backend"] == "slow"
        assert "Backend serving 64x128 now: **slow fp32** (default; the candidates are being measured" in summary
        assert details["serving"] == {"backend": "slow", "precision": "fp32", "how": "default", "measuring": True,
                                      "reason": ""}
        fake_candidates.set()
        assert predictor.wait_background(timeout=60)
        summary, details = _summary_and_details(handlers.segment(upload, "half"))
        assert details["backend"] == "fast"
        assert "Backend serving 64x128 now: **fast fp32** (chosen by auto: first measurement" in summary
        assert details["serving"]["how"] == "measured" and not details["serving"]["measuring"]
    finally:
        fake_candidates.set()
        handlers.stop_background()
    assert predictor._worker is None


def _summary_and_details(outputs):
    return outputs[3], outputs[6]


def test_demo_with_auto_answers_before_any_candidate_is_measured(free_port, segment_command, small_checkpoint,
                                                                   tmp_path, wait_for_address_line):
    """A real ``segment demo --backend auto`` on an empty cache: the page answers while no choice
    exists yet, the log says what serves meanwhile, and SIGTERM still stops it cleanly."""
    port, cache = free_port, tmp_path / "cache"
    env = {**{k: v for k, v in os.environ.items() if k != "GRADIO_TEMP_DIR"}, "TMPDIR": str(tmp_path)}
    log = tmp_path / "demo.log"
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen([*segment_command, "demo", "--checkpoint", str(small_checkpoint), "--port", str(port),
                                 "--backend", "auto", "--cache-dir", str(cache), "--warm-up", "half"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        page = None
        while time.monotonic() - started < 120 and proc.poll() is None and page is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                    page = resp.read().decode()
            except OSError:
                time.sleep(0.2)
        assert page is not None, log.read_text()
        assert not list(cache.rglob("auto-*.json"))  # nothing measured yet: the page did not wait for it
        wait_for_address_line(log)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=180)
    text = log.read_text()
    assert proc.returncode == 0, text
    assert "serves until the candidates, measured in the background, pick the fastest" in text
    assert "ready at half" not in text  # no preparation before the page


def test_reselect_needs_auto(capsys):
    from segment.cli import main

    assert main(["demo", "--backend", "torch", "--reselect"]) == 2
    assert "needs --backend auto" in capsys.readouterr().err
