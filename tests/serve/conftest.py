"""Shared fixtures for the demo tests: a small random-init checkpoint and one server for the session.

The server is launched in-process on loopback with the same code path as
``segment demo`` (private temp folder, file-access rules, limits), tightened
limits so the limit tests need only small files.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image

from data.labels import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE
from segment.checkpoint import make_checkpoint, save_checkpoint
from segment.model import build_model
from segment.predict import Predictor
from segment.presets import get_preset

# A 1024x512 drawn street scene (data.synthetic): 2:1, so "half" runs at exactly 512x1024.
STREET_JPEG = Path(__file__).resolve().parent / "data" / "synthetic_street_1024x512.jpg"


def write_small_checkpoint(path: Path, seed: int = 0) -> Path:
    """The 'small' preset (T7-11) with random weights and the Cityscapes label space."""
    config = get_preset("small").config
    torch.manual_seed(seed)
    model = build_model(config)
    save_checkpoint(path, make_checkpoint(model=model, config=config, classes=CITYSCAPES_CLASSES,
                                          palette=CITYSCAPES_PALETTE, mean=[0.485, 0.456, 0.406],
                                          std=[0.229, 0.224, 0.225]))
    return path


def png_declaring_size(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` but holds one pixel's data (a bomb's header)."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    struct.pack_into(">II", data, 16, width, height)  # IHDR data starts after signature(8)+len(4)+type(4)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory) -> Path:
    return write_small_checkpoint(tmp_path_factory.mktemp("ckpt") / "small.pt")


@pytest.fixture(scope="session")
def checkpoint_writer():
    """``write_small_checkpoint(path, seed=0)`` for tests that need more than one model."""
    return write_small_checkpoint


@pytest.fixture(scope="session")
def predictor(small_checkpoint) -> Predictor:
    return Predictor.from_checkpoint(small_checkpoint)


@dataclass
class Server:
    url: str
    settings: object  # serve.app.DemoSettings
    checkpoint: Path
    temp_dir: Path


@pytest.fixture(scope="session")
def demo_server(predictor, small_checkpoint):
    from serve.app import DemoSettings, build_app, launch_app, private_temp_dir

    saved = os.environ.get("GRADIO_TEMP_DIR")
    temp_dir = private_temp_dir()
    settings = DemoSettings(max_upload_mb=2.0, max_pixels=4_000_000)  # default concurrency (2) and queue
    demo = build_app(predictor=predictor, settings=settings)
    _, url = launch_app(demo, host="127.0.0.1", port=None, settings=settings,
                        blocked=[small_checkpoint.parent], block_thread=False)
    try:
        yield Server(url=url, settings=settings, checkpoint=small_checkpoint, temp_dir=temp_dir)
    finally:
        demo.close()
        if saved is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = saved


@pytest.fixture
def client(demo_server, tmp_path):
    from gradio_client import Client

    return Client(demo_server.url, verbose=False, download_files=str(tmp_path))


@pytest.fixture
def street_jpeg() -> Path:
    return STREET_JPEG


@pytest.fixture
def bomb_png():
    """``bomb_png(width, height)`` -> PNG bytes whose header declares that size."""
    return png_declaring_size


@pytest.fixture
def free_port() -> int:
    """A TCP port nothing listens on now, for a demo started in its own process."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def segment_command() -> list[str]:
    """How to run the installed ``segment`` command from this interpreter's environment."""
    import os
    import shutil
    import sys

    exe = shutil.which("segment", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "segment.cli"]



ADDRESS_LINE = "open http://127.0.0.1:"  # what `segment demo` prints once its server listens


@pytest.fixture
def wait_for_address_line():
    """``wait_for_address_line(log)``: the page can answer a moment before ``segment demo`` prints
    its address (printed once Gradio's launch() has returned); wait for the line before stopping it."""
    import time

    def wait(log: Path, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while ADDRESS_LINE not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)

    return wait
