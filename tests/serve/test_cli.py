"""``segment demo`` as a user runs it: a real process, a real port, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request

import pytest

from segment.cli import main

STARTUP_BOUND_S = 120  # torch + gradio imports on a busy 2-core machine






def test_segment_demo_launches_serves_and_stops_cleanly(free_port, segment_command, small_checkpoint, tmp_path,
                                                       wait_for_address_line):
    port = free_port
    # TMPDIR: so we can see its private temp folder come and go.
    env = {**{k: v for k, v in os.environ.items() if k != "GRADIO_TEMP_DIR"}, "TMPDIR": str(tmp_path)}
    log = tmp_path / "demo.log"
    with log.open("w") as log_file:
        proc = subprocess.Popen([*segment_command, "demo", "--checkpoint", str(small_checkpoint),
                                 "--port", str(port), "--backend", "torch"],
                                env=env, stdout=log_file, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + STARTUP_BOUND_S
        page = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                    page = resp.read().decode()
                    break
            except OSError:
                time.sleep(0.5)
        assert page is not None, f"no page within {STARTUP_BOUND_S} s; output: {log.read_text()}"
        wait_for_address_line(log)
        assert "<title>Street-scene segmentation</title>" in page or "Street-scene segmentation" in page
        assert len(list(tmp_path.glob("segment-demo-*"))) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    out = log.read_text()
    assert proc.returncode == 0, out
    assert "open http://127.0.0.1:" in out and "ready at half" in out
    assert list(tmp_path.glob("segment-demo-*")) == []  # private temp folder removed on exit


def test_a_taken_port_is_an_error_and_no_address_is_offered(segment_command, small_checkpoint, tmp_path):
    """A process of its own, as a user runs it (a demo started in the test process would leave
    Gradio's temp folder setting behind for the tests after it)."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([*segment_command, "demo", "--checkpoint", str(small_checkpoint), "--port", str(port),
                               "--backend", "torch", "--warm-up", "none", "--cache-dir", str(tmp_path / "cache")],
                              env={**os.environ, "TMPDIR": str(tmp_path)}, capture_output=True, text=True,
                              timeout=STARTUP_BOUND_S)
    assert done.returncode == 2, done.stdout + done.stderr
    assert (f"cannot listen on 127.0.0.1:{port} (something else listens there); pick another --port"
            in done.stderr)
    assert "open http" not in done.stdout + done.stderr  # the page is not there: the demo does not say it is
    assert list(tmp_path.glob("segment-demo-*")) == []  # its private temp folder removed


def test_bad_checkpoint_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "weights.pt"
    bad.write_text("not a checkpoint")
    assert main(["demo", "--checkpoint", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("segment demo: error:") and "weights.pt" in err and "\n" not in err


def test_missing_checkpoint_and_bad_limits(tmp_path, capsys):
    assert main(["demo", "--checkpoint", str(tmp_path / "nope.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["demo", "--max-upload-mb", "0"]) == 2
    assert "--max-upload-mb" in capsys.readouterr().err


class _Exploit:
    """Unpickling this would create a file (what a malicious checkpoint could do)."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def test_checkpoint_with_code_is_refused_not_run(tmp_path, capsys):
    import torch

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "mnv3-lraspp-checkpoint", "payload": _Exploit(marker)}, evil)
    assert main(["demo", "--checkpoint", str(evil)]) == 2
    assert "unsafe pickle" in capsys.readouterr().err
    assert not marker.exists()  # weights_only=True never ran the payload


def test_bundled_models_are_offered_default_first(tmp_path, monkeypatch, checkpoint_writer, capsys):
    """Without --checkpoint the page offers every bundled model present, --model (default large) first."""
    import argparse

    from segment import bundled
    from segment.errors import UserError
    from serve.cli import _load_models

    def args(**given):
        return argparse.Namespace(**{"checkpoint": None, "model": None, "backend": "torch", **given})

    monkeypatch.setattr(bundled, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(UserError, match="camvid_mnv3_lraspp.pt, which is missing"):
        _load_models(args())
    large = checkpoint_writer(tmp_path / "camvid_mnv3_lraspp.pt")
    models, files = _load_models(args())
    assert [(m.key, m.title) for m in models] == [("large", "MobileNetV3-Large (Table 7 row 8)")] and files == [large]
    with pytest.raises(UserError, match="camvid_mnv3small_lraspp.pt, which is missing"):
        _load_models(args(model="small"))

    small = checkpoint_writer(tmp_path / "camvid_mnv3small_lraspp.pt", seed=1)
    models, files = _load_models(args())
    assert [(m.key, m.title) for m in models] == [("large", "MobileNetV3-Large (Table 7 row 8)"),
                                                  ("small", "MobileNetV3-Small (Table 7 row 11)")]
    assert [m.predictor.name for m in models] == ["camvid_mnv3_lraspp", "camvid_mnv3small_lraspp"]
    assert files == [large, small]
    models, files = _load_models(args(model="small"))
    assert [m.key for m in models] == ["small", "large"] and files == [small, large]
    # --checkpoint: that model alone, named by its file.
    models, files = _load_models(args(checkpoint=small))
    assert [(m.key, m.title) for m in models] == [("camvid_mnv3small_lraspp", "camvid_mnv3small_lraspp")]
    # Both: one line, exit 2.
    assert main(["demo", "--model", "small", "--checkpoint", str(small)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("segment demo: error:") and "pass only one" in err and "\n" not in err


def test_a_process_forked_from_the_demo_dies_on_sigterm():
    """The demo turns SIGTERM into a clean stop, but a child forked from it (OpenVINO's usage
    telemetry sends from one, and multiprocessing terminates it with SIGTERM at exit) must die
    on it: with the demo's handler inherited, a child blocked in C code never ran it and the
    demo hung at exit joining it."""
    from serve.cli import stop_on_sigterm

    before = signal.getsignal(signal.SIGTERM)
    try:
        stop_on_sigterm()
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # the demo's own clean stop
        pid = os.fork()
        if pid == 0:
            try:
                time.sleep(60)
            finally:
                os._exit(3)  # the inherited handler's way out: never back into this test run
        time.sleep(0.2)
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM, status
    finally:
        signal.signal(signal.SIGTERM, before)


class _Background:
    """Background work that stops when asked (``stops``), keeps going (an export in an engine),
    or is interrupted while the exit waits for it (a second Ctrl+C)."""

    def __init__(self, *, busy: bool, stops: bool = True, interrupted: bool = False):
        self.busy, self.stops, self.interrupted, self.timeouts = busy, stops, interrupted, []

    def background_busy(self) -> bool:
        return self.busy

    def stop_background(self, timeout: float) -> None:
        self.timeouts.append(timeout)
        if self.interrupted:
            raise KeyboardInterrupt
        self.busy = self.busy and not self.stops


def test_the_exit_waits_a_few_seconds_for_the_background_then_quits(monkeypatch, tmp_path, capsys):
    """An exit gives the background work a few seconds (an int8 calibration at full would take
    half a minute, longer than docker stop waits), then quits without it, removing the private
    temp folder as atexit would; a second Ctrl+C quits at once."""
    from serve import cli

    exits = []

    def fake_exit(code):  # os._exit never returns
        exits.append(code)
        raise SystemExit(code)

    monkeypatch.setattr(os, "_exit", fake_exit)
    temp = tmp_path / "segment-demo-private"

    done = _Background(busy=True)
    cli.finish_background(done, temp_dir=temp)
    assert done.timeouts == [cli.STOP_GRACE_S] and exits == []
    assert "Ctrl+C again to quit now" in capsys.readouterr().out

    for work, code in ((_Background(busy=True, stops=False), 0), (_Background(busy=True, interrupted=True), 130)):
        temp.mkdir()
        with pytest.raises(SystemExit):
            cli.finish_background(work, temp_dir=temp)
        assert exits[-1] == code and not temp.exists()
        assert "quit without waiting" in capsys.readouterr().out

    idle = _Background(busy=False)
    cli.finish_background(idle)
    assert idle.timeouts == [] and capsys.readouterr().out == ""
