"""``segment demo`` as a user runs it: a real process, a real port, stopped with SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from segment.cli import main

STARTUP_BOUND_S = 120  # torch + gradio imports on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def segment_command() -> list[str]:
    exe = shutil.which("segment", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "segment.cli"]


def test_segment_demo_launches_serves_and_stops_cleanly(small_checkpoint, tmp_path):
    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # so we can see its private temp folder come and go
    proc = subprocess.Popen([*segment_command(), "demo", "--checkpoint", str(small_checkpoint), "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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
        assert page is not None, f"no page within {STARTUP_BOUND_S} s; output: {proc.stdout.read() if proc.poll() is not None else ''}"
        assert "<title>Street-scene segmentation</title>" in page or "Street-scene segmentation" in page
        assert len(list(tmp_path.glob("segment-demo-*"))) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "open http://127.0.0.1:" in out
    assert list(tmp_path.glob("segment-demo-*")) == []  # private temp folder removed on exit


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
