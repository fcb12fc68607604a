"""A bounded load test on loopback: 20 concurrent gradio_client clients, every request must succeed."""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from gradio_client import Client, handle_file
from PIL import Image

from serve.app import API_NAME

CLIENTS = 20
TIME_BOUND_S = 240  # generous for a busy 2-core CI machine; the run normally takes a few seconds

pytestmark = pytest.mark.filterwarnings("ignore::Warning")


def test_twenty_concurrent_clients_all_succeed(demo_server, street_jpeg, tmp_path):
    def one_request(i: int) -> float:
        client = Client(demo_server.url, verbose=False, download_files=str(tmp_path / f"c{i}"))
        start = time.perf_counter()
        overlay, *_ = client.predict(handle_file(str(street_jpeg)), "half", api_name=f"/{API_NAME}")
        elapsed = time.perf_counter() - start
        assert Image.open(overlay).size == Image.open(street_jpeg).size
        return elapsed

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        latencies = sorted(pool.map(one_request, range(CLIENTS)))  # re-raises any failed request
    wall = time.perf_counter() - start
    assert len(latencies) == CLIENTS
    p50 = statistics.median(latencies)
    p95 = latencies[min(CLIENTS - 1, round(0.95 * (CLIENTS - 1)))]
    w, h = Image.open(street_jpeg).size
    print(f"\nload test: {CLIENTS} concurrent clients, {w}x{h} JPEG at 'half' (512x1024), "
          f"queue concurrency {demo_server.settings.concurrency}: p50 {p50:.2f} s, p95 {p95:.2f} s, "
          f"max {latencies[-1]:.2f} s, all {CLIENTS} done in {wall:.2f} s ({CLIENTS / wall:.1f} req/s)")
    assert wall < TIME_BOUND_S
