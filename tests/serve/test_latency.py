"""``segment demo-timing``: the browser's and the API's view of a request, against a live demo."""

from __future__ import annotations

from pathlib import Path

import pytest

from serve.latency import API_CLIENTS, ApiTiming, api_calls, api_table, browser_clicks, click_table, parse_click

CHROMIUM = Path("/usr/bin/chromium")


SUMMARY = ("MobileNetV3-Large on openvino (int8), model ran at 1024x1376 (full, 4:3 bucket: photo resized to "
           "1024x1365, the rest padded): model 20 ms, whole prediction 31 ms.\n\nServer time for this request: 44 ms = reading the photo 2")


def test_a_click_is_read_from_the_page_the_resource_timings_and_the_timing_text():
    # The demo's page: the overlay arrives inside the result (a data: URL), no fetch to time.
    raw = {"page_ms": 120.0, "in_page_ms": 100.0, "summary": SUMMARY,
           "resources": [{"name": "http://x/gradio_api/queue/data?session_hash=s", "start": -900.0, "end": -1.0},
                         {"name": "http://x/gradio_api/queue/join?", "start": 3.0, "end": 9.0}]}
    click = parse_click(raw)
    assert (click.request_sent_ms, click.in_page_ms, click.overlay_fetch_start_ms) == (3.0, 100.0, None)
    assert (click.server_ms, click.prediction_ms, click.page_ms) == (44.0, 31.0, 120.0)
    assert click.resolution == "full"
    table = click_table([click])
    assert "| request sent -> result in the page (server, queue, event stream, page update) | 97.0 |" in table
    assert "| result in the page -> overlay shown (decode, layout) | 20.0 |" in table
    assert "| click -> shown, minus the whole prediction | 89.0 |" in table
    assert "overlay fetched" not in table


def test_an_overlay_served_as_a_file_gets_its_fetch_row():
    raw = {"page_ms": 120.0, "in_page_ms": 70.0, "summary": SUMMARY,
           "resources": [{"name": "http://x/gradio_api/file=/tmp/old_overlay.jpg", "start": -50.0, "end": -40.0},
                         {"name": "http://x/gradio_api/queue/join?", "start": 3.0, "end": 9.0},
                         {"name": "http://x/gradio_api/file=/tmp/out-1/a_overlay.jpg", "start": 80.0, "end": 95.0},
                         {"name": "http://x/gradio_api/file=/tmp/out-1/a_color.png", "start": 81.0, "end": 90.0}]}
    click = parse_click(raw)
    assert (click.overlay_fetch_start_ms, click.overlay_fetch_end_ms) == (80.0, 95.0)
    assert "| overlay fetched | 15.0 |" in click_table([click])


def test_api_table_lists_the_server_stages():
    calls = [ApiTiming(round_trip_ms=300.0, server_ms=40.0, prediction_ms=30.0,
                       server_stages={"read": 1.0, "prediction": 30.0, "prediction_stages": {}, "total": 40.0})]
    table = api_table(calls)
    assert "|   read | 1.0 |" in table and "| round trip minus the server's work (client, transfer, Gradio) | 260.0 |" in table
    assert "| API through gradio_client, 1 calls (medians) | ms |" in table
    assert "|   the client's own CPU time | - |" in table  # not measured: shown as missing, not as 0


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
@pytest.mark.parametrize("resolution", ["half", "full"])
def test_timings_against_a_live_demo(demo_server, street_jpeg, resolution):
    pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")
    clicks = browser_clicks(demo_server.url, street_jpeg, resolution=resolution, clicks=2, browser_path=str(CHROMIUM))
    assert len(clicks) == 2
    for c in clicks:
        assert c.resolution == resolution  # the page really ran what was asked
        # Every moment was found on the real page, in the order a request runs.
        assert None not in (c.request_sent_ms, c.in_page_ms, c.server_ms, c.prediction_ms)
        assert 0 <= c.request_sent_ms < c.in_page_ms <= c.page_ms
        assert c.overlay_fetch_start_ms is None  # the overlay came inside the result: nothing fetched


@pytest.mark.parametrize("client", API_CLIENTS)
def test_api_calls_through_each_client(demo_server, street_jpeg, client):
    calls = api_calls(demo_server.url, street_jpeg, calls=2, client=client)
    assert len(calls) == 2
    assert all(c.client == client and c.round_trip_ms > c.server_ms > 0 and c.client_cpu_ms > 0 for c in calls)
    assert all(c.server_stages["prediction"] > 0 for c in calls)


def test_an_api_error_is_reported_not_timed(demo_server, street_jpeg):
    with pytest.raises(RuntimeError, match="with an error: .*'quarter'"):
        api_calls(demo_server.url, street_jpeg, resolution="quarter", calls=1, client="http")


def test_command_refuses_a_missing_photo(tmp_path):
    from segment.cli import build_parser
    from segment.errors import UserError
    from serve.latency_cli import run

    args = build_parser("demo-timing").parse_args(["demo-timing", "http://127.0.0.1:9", "--photo",
                                                    str(tmp_path / "nope.jpg")])
    with pytest.raises(UserError, match="nope.jpg: no such file"):
        run(args)
