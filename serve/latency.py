"""Where a demo request's time goes, seen from a real browser and from the API.

The server's own share comes from the page itself: every result carries its
breakdown (``serve.stages``: reading the photo, the prediction and its stages,
colours, encodes, writes), as a line of the page's timing text and as
``server_ms`` in the API's JSON. This module adds what only a client sees:

- ``browser_clicks``: headless Chromium (Playwright) clicks "Segment" and times,
  with the page's own clock, click -> the new overlay decoded; the request
  leaving (a resource timing) and the new overlay's arrival in the page split
  that into sending the request, the server's work plus Gradio's queue, event
  stream and page update, and the image's decode (and its fetch, for a page
  that serves the overlay as a file).
- ``api_calls``: API round trips (upload, predict, download the files), either
  through ``gradio_client`` or as plain HTTP requests to Gradio's REST API
  (``/upload``, ``/call/<api>`` and its event stream, the files), each with the
  client's own CPU time. On a 2-core machine that shares the cores with the
  server, the client's CPU is taken from the model: ``gradio_client`` spent
  about 400 ms of CPU per call there, plain HTTP about 7 ms (docs/demo.md).

``segment demo-timing`` prints both as tables (medians).
"""

from __future__ import annotations

import json
import re
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from serve.app import API_NAME
from serve.segmentation import RESOLUTIONS

# Filled in the page: click "Segment", note when the overlay <img> gets a new src (the result is in
# the page), resolve when that has loaded and decoded. Times are the page's performance.now(),
# relative to the click.
_CLICK_JS = """
async (timeoutMs) => {
  const box = document.querySelector('#overlay');
  const img = () => box.querySelector('img');
  const before = img() ? img().getAttribute('src') : null;
  performance.clearResourceTimings();
  const t0 = performance.now();
  let inPage = null;
  const shown = new Promise((resolve, reject) => {
    const timer = setTimeout(() => { observer.disconnect(); reject(new Error('no new overlay')); }, timeoutMs);
    const check = async () => {
      const i = img();
      if (!i || i.getAttribute('src') === before) return;
      observer.disconnect();
      inPage = performance.now();
      if (!(i.complete && i.naturalWidth > 0)) {
        await new Promise((ok, bad) => { i.addEventListener('load', ok, {once: true});
                                         i.addEventListener('error', bad, {once: true}); });
      }
      await i.decode();
      clearTimeout(timer);
      resolve(performance.now());
    };
    const observer = new MutationObserver(check);
    observer.observe(box, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
  });
  document.querySelector('#run').click();
  const t1 = await shown;
  const resources = performance.getEntriesByType('resource').map(e => ({
    name: e.name, start: e.startTime - t0, end: e.responseEnd - t0}));
  return {page_ms: t1 - t0, in_page_ms: inPage - t0, resources,
          summary: document.querySelector('#summary').innerText};
}
"""

_SERVER = re.compile(r"Server time for this request: (\d+) ms")
_PREDICTION = re.compile(r"whole prediction (\d+) ms")
_RAN_AT = re.compile(r"model ran at \d+x\d+ \((\w+),")  # the budget the server ran: "half" or "full"


@dataclass
class ClickTiming:
    """One click, in ms from the click: when the request left, when the new overlay was set in the
    page (the result had arrived), its fetch if it is a file, and when it was decoded on the page."""

    page_ms: float
    request_sent_ms: float | None
    in_page_ms: float | None  # the overlay's new src set by the page
    overlay_fetch_start_ms: float | None
    overlay_fetch_end_ms: float | None
    server_ms: float | None  # the server's breakdown total (the page's timing text)
    prediction_ms: float | None  # the whole prediction (the page's timing text)
    resolution: str | None = None  # the budget the server says it ran at (the page's timing text)
    resources: list[dict] = field(default_factory=list)  # every fetch after the click: name, start, end (ms)


@dataclass
class ApiTiming:
    round_trip_ms: float
    server_ms: float
    prediction_ms: float
    server_stages: dict = field(default_factory=dict)
    client: str = "gradio_client"  # "http" or "gradio_client" (API_CLIENTS)
    client_cpu_ms: float | None = None  # the client's own CPU time in the call (all its threads)


def _first(resources: list[dict], needle: str) -> dict | None:
    hits = [r for r in resources if needle in r["name"] and r["start"] >= -1.0]
    return min(hits, key=lambda r: r["start"]) if hits else None


def _number(pattern: re.Pattern, text: str) -> float | None:
    match = pattern.search(text)
    return float(match.group(1)) if match else None


def parse_click(raw: dict) -> ClickTiming:
    join = _first(raw["resources"], "/queue/join")
    overlay = _first(raw["resources"], "_overlay.")
    return ClickTiming(page_ms=raw["page_ms"], request_sent_ms=join["start"] if join else None,
                       in_page_ms=raw.get("in_page_ms"),
                       overlay_fetch_start_ms=overlay["start"] if overlay else None,
                       overlay_fetch_end_ms=overlay["end"] if overlay else None,
                       server_ms=_number(_SERVER, raw["summary"]),
                       prediction_ms=_number(_PREDICTION, raw["summary"]),
                       resolution=match.group(1) if (match := _RAN_AT.search(raw["summary"])) else None,
                       resources=[r for r in raw["resources"] if r["start"] >= -1.0])


def browser_clicks(url: str, photo: Path, *, resolution: str = "half", clicks: int = 10,
                   browser_path: str | None = None, timeout_s: float = 120.0,
                   pause_s: float = 0.5) -> list[ClickTiming]:
    """Upload ``photo`` once, then click "Segment" ``clicks`` times (after one untimed click),
    ``pause_s`` apart, as a person would: whatever a result sets off after it is shown settles
    before the next click."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise RuntimeError("the browser timing needs Playwright: pip install playwright, and a Chromium "
                           "(playwright install chromium, or --browser /usr/bin/chromium)") from None
    timings = []
    with sync_playwright() as p:
        options = {"executable_path": browser_path} if browser_path else {}
        # --no-sandbox: containers that run as root cannot start Chromium's sandbox.
        browser = p.chromium.launch(headless=True, args=["--no-sandbox"], **options)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.goto(url)
            # By the option's own label: the radio's help text names both resolutions too.
            page.locator("#resolution").get_by_label(RESOLUTIONS[resolution], exact=True).check()
            page.locator("#photo input[type=file]").set_input_files(str(photo))
            page.locator("#overlay img").wait_for(state="visible", timeout=timeout_s * 1000)
            page.wait_for_function("() => /whole prediction/.test(document.querySelector('#summary').innerText)",
                                   timeout=timeout_s * 1000)
            for i in range(clicks + 1):
                page.wait_for_timeout(pause_s * 1000)
                raw = page.evaluate(_CLICK_JS, timeout_s * 1000)
                if i:  # the first click is a warm-up
                    timings.append(_at_resolution(parse_click(raw), resolution))
        finally:
            browser.close()
    return timings


def _at_resolution(timing: ClickTiming, resolution: str) -> ClickTiming:
    """A timing of some other resolution than asked would be reported as this one's: refuse it."""
    if timing.resolution != resolution:
        raise RuntimeError(f"the page ran at {timing.resolution!r}, not at {resolution!r}: its resolution "
                           "choice was not set (has the page's #resolution radio changed?)")
    return timing


def api_calls(url: str, photo: Path, *, resolution: str = "half", calls: int = 10,
              client: str = "gradio_client") -> list[ApiTiming]:
    """``calls`` API round trips (after one untimed call): upload, predict, download the outputs,
    through ``client`` ("gradio_client" or "http": Gradio's REST API with plain requests)."""
    if client not in API_CLIENTS:
        raise ValueError(f"client must be one of {', '.join(API_CLIENTS)}, not {client!r}")
    call, close = _CLIENTS[client](url)
    timings = []
    try:
        for i in range(calls + 1):
            cpu0, t0 = time.process_time(), time.perf_counter()
            details = call(photo, resolution)
            ms, cpu_ms = (time.perf_counter() - t0) * 1e3, (time.process_time() - cpu0) * 1e3
            if i:
                stages = details.get("server_ms", {})
                timings.append(ApiTiming(round_trip_ms=ms, server_ms=stages.get("total", float("nan")),
                                         prediction_ms=details["total_ms"], server_stages=stages,
                                         client=client, client_cpu_ms=cpu_ms))
    finally:
        close()
    return timings


def _gradio_client_call(url: str):
    from gradio_client import Client, handle_file

    gc = Client(url, verbose=False)

    def call(photo: Path, resolution: str) -> dict:
        return gc.predict(handle_file(str(photo)), resolution, api_name=f"/{API_NAME}")[6]

    return call, gc.close


def _http_call(url: str):
    """Gradio's REST API as curl would use it: upload the photo, start the call with every input
    (the API's own defaults after the first two), read the event stream, fetch each file output."""
    import httpx

    base = url.rstrip("/") + "/gradio_api"
    http = httpx.Client(timeout=120)
    params = http.get(f"{base}/info").raise_for_status().json()["named_endpoints"][f"/{API_NAME}"]["parameters"]
    defaults = [p.get("parameter_default") for p in params[2:]]

    def call(photo: Path, resolution: str) -> dict:
        with open(photo, "rb") as f:
            path = http.post(f"{base}/upload", files={"files": (photo.name, f)}).raise_for_status().json()[0]
        image = {"path": path, "orig_name": photo.name, "meta": {"_type": "gradio.FileData"}}
        event_id = http.post(f"{base}/call/{API_NAME}", json={"data": [image, resolution, *defaults]}
                             ).raise_for_status().json()["event_id"]
        outputs = _stream_result(http, f"{base}/call/{API_NAME}/{event_id}")
        for file_url in dict.fromkeys(o["url"] for o in outputs if isinstance(o, dict) and o.get("url")):
            http.get(file_url).raise_for_status()
        return outputs[6]

    return call, http.close


def _stream_result(http, url: str) -> list:
    """The outputs of a ``/call`` event stream's "complete" event; its "error" event raises."""
    event = None
    with http.stream("GET", url) as response:
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.partition(":")[2].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                data = json.loads(line.partition(":")[2])
                if event == "error":
                    reason = data.get("error") if isinstance(data, dict) else data
                    raise RuntimeError(f"the demo answered the API call with an error: {reason}")
                return data
    raise RuntimeError(f"the demo's event stream {url} ended without a result")


# How each client makes a call: (url) -> (call(photo, resolution) -> the result's details, close).
_CLIENTS = {"http": _http_call, "gradio_client": _gradio_client_call}
API_CLIENTS = tuple(_CLIENTS)


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def click_table(timings: list[ClickTiming]) -> str:
    """Medians of the browser clicks, split at the moments the browser can see."""
    def gap(a: str, b: str):
        return _median([getattr(t, b) - getattr(t, a) for t in timings
                        if getattr(t, a) is not None and getattr(t, b) is not None])

    rows = [
        ("click -> request sent", _median([t.request_sent_ms for t in timings])),
        ("request sent -> result in the page (server, queue, event stream, page update)",
         gap("request_sent_ms", "in_page_ms")),
        ("  of which the server's own work (its timing text)", _median([t.server_ms for t in timings])),
        ("  of which the whole prediction", _median([t.prediction_ms for t in timings])),
    ]
    if any(t.overlay_fetch_start_ms is not None for t in timings):  # a page that serves the overlay as a file
        rows.append(("overlay fetched", gap("overlay_fetch_start_ms", "overlay_fetch_end_ms")))
    rows += [
        ("result in the page -> overlay shown (decode, layout)", gap("in_page_ms", "page_ms")),
        ("click -> overlay shown", _median([t.page_ms for t in timings])),
        ("click -> shown, minus the whole prediction",
         _median([t.page_ms - t.prediction_ms for t in timings if t.prediction_ms is not None])),
    ]
    lines = [f"| browser, {len(timings)} clicks (medians) | ms |", "|---|---|"]
    lines += [f"| {name} | {_fmt(v)} |" for name, v in rows]
    return "\n".join(lines)


def api_table(timings: list[ApiTiming]) -> str:
    """Medians of one client's API calls, the server's stages among them."""
    stages: dict[str, list[float]] = {}
    for t in timings:
        for key, value in t.server_stages.items():
            if isinstance(value, (int, float)) and key != "total":
                stages.setdefault(key, []).append(value)
    client = timings[0].client if timings else "gradio_client"
    rows = [(f"round trip ({client}: upload, predict, download)", _median([t.round_trip_ms for t in timings])),
            ("  the client's own CPU time", _median([t.client_cpu_ms for t in timings])),
            ("server's own work", _median([t.server_ms for t in timings]))]
    rows += [(f"  {key}", _median(values)) for key, values in stages.items()]
    rows.append(("round trip minus the server's work (client, transfer, Gradio)",
                 _median([t.round_trip_ms - t.server_ms for t in timings])))
    lines = [f"| API through {client}, {len(timings)} calls (medians) | ms |", "|---|---|"]
    lines += [f"| {name} | {_fmt(v)} |" for name, v in rows]
    return "\n".join(lines)


def as_json(clicks: list[ClickTiming], api: list[ApiTiming]) -> dict:
    return {"clicks": [asdict(t) for t in clicks], "api": [asdict(t) for t in api]}
