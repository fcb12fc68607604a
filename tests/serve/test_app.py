"""The demo launched on localhost and driven through gradio_client; limits and file access."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import numpy as np
import pytest
from gradio_client import handle_file
from PIL import Image

from serve.app import API_NAME
from serve.segmentation import DEFAULT_OPACITY

pytestmark = pytest.mark.filterwarnings("ignore::Warning")


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_api_endpoint_is_named_segment_and_takes_image_and_resolution(client, predictor):
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert list(endpoints) == [f"/{API_NAME}"]  # internal events are private
    params = endpoints[f"/{API_NAME}"]["parameters"]
    assert [(p["parameter_name"], p["component"]) for p in params] == [
        ("image", "Image"), ("resolution", "Radio"), ("model", "Radio"), ("opacity", "Slider")]
    assert params[1]["type"]["enum"] == ["half", "full"]
    # The model and the opacity are optional trailing arguments: (image, resolution) calls keep working.
    assert params[2]["parameter_has_default"] and params[2]["parameter_default"] == predictor.name
    assert params[3]["parameter_has_default"] and params[3]["parameter_default"] == DEFAULT_OPACITY


@pytest.mark.parametrize("resolution", ["half", "full"])
def test_segment_returns_overlay_map_legend_and_downloads(client, street_jpeg, resolution, predictor):
    overlay, segmap, legend, summary, color_png, label_png, details = client.predict(
        handle_file(str(street_jpeg)), resolution, api_name=f"/{API_NAME}")
    photo = np.asarray(Image.open(street_jpeg).convert("RGB"))
    h, w = photo.shape[:2]
    assert Image.open(overlay).size == (w, h)
    assert Image.open(color_png).mode == "P"  # a palette PNG: one byte per pixel, the class colours
    color = np.asarray(Image.open(color_png).convert("RGB"))
    labels = np.asarray(Image.open(label_png))
    assert color.shape == (h, w, 3) and labels.shape == (h, w)
    assert (color == predictor.palette[labels]).all()  # the two downloads agree
    assert (np.asarray(Image.open(segmap).convert("RGB")) == color).all()  # map shown = colour PNG (lossless)
    assert color_png.endswith(f"{street_jpeg.stem}_color.png") and label_png.endswith("_trainIds.png")
    assert details["model_input_hw"] == ([512, 1024] if resolution == "half" else [1024, 2048])
    shares = {c["name"]: c["share"] for c in details["classes"]}
    counts = np.bincount(labels.ravel(), minlength=len(predictor.classes))
    assert shares == {predictor.classes[i]: pytest.approx(n / labels.size, abs=1e-6) for i, n in enumerate(counts) if n}
    for name in shares:
        assert name in legend
    assert "ms" in summary and predictor.backend in summary
    # The server's breakdown adds up: its stages are the request's time on the server, the
    # prediction's own stages are the prediction.
    stages = details["server_ms"]
    booked = sum(v for k, v in stages.items() if k not in ("prediction_stages", "total"))
    assert booked == pytest.approx(stages["total"], abs=1.0)
    assert sum(stages["prediction_stages"].values()) == pytest.approx(stages["prediction"], abs=0.5)
    assert stages["prediction"] == pytest.approx(details["total_ms"], abs=0.01)
    assert f"Server time for this request: {stages['total']:.0f} ms" in summary


def test_overlay_is_a_blend_of_photo_and_map(client, street_jpeg):
    overlay, *_ , color_png, _, _ = client.predict(handle_file(str(street_jpeg)), "half", api_name=f"/{API_NAME}")
    photo = np.asarray(Image.open(street_jpeg).convert("RGB"), dtype=np.float32)
    color = np.asarray(Image.open(color_png).convert("RGB"), dtype=np.float32)
    shown = np.asarray(Image.open(overlay).convert("RGB"), dtype=np.float32)
    # Default opacity 0.5; the overlay is sent as lossy JPEG, so compare on average.
    assert np.abs(shown - (photo + color) / 2).mean() < 6
    assert np.abs(shown - photo).mean() > 10


def test_opacity_is_an_argument_of_the_request(client, street_jpeg, predictor):
    overlay, *_, color_png, _, _ = client.predict(handle_file(str(street_jpeg)), "half", predictor.name, 1.0,
                                                  api_name=f"/{API_NAME}")
    color = np.asarray(Image.open(color_png).convert("RGB"), dtype=np.float32)
    shown = np.asarray(Image.open(overlay).convert("RGB"), dtype=np.float32)
    assert np.abs(shown - color).mean() < 6  # opacity 1: the map alone


@pytest.mark.parametrize("name,payload,message", [
    ("notes.txt", b"this is not an image\n", "not an image"),
    ("empty.png", b"", "the file is empty"),
    ("drawing.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not an image"),
])
def test_non_image_gets_a_clear_error(client, tmp_path, name, payload, message):
    path = tmp_path / name
    path.write_bytes(payload)
    with pytest.raises(Exception, match=message) as info:
        client.predict(handle_file(str(path)), "half", api_name=f"/{API_NAME}")
    assert name in str(info.value)
    assert str(tmp_path) not in str(info.value)  # no server path leaked


def test_bombs_and_oversized_images_refused(client, tmp_path, bomb_png):
    for name, data, message in [
        ("huge_header.png", bomb_png(3000, 2000), "6.0 megapixels, above the limit of 4 MP"),
        ("bomb.png", bomb_png(20000, 20000), "megapixels"),
    ]:
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(Exception, match=message):
            client.predict(handle_file(str(path)), "half", api_name=f"/{API_NAME}")
    real = tmp_path / "real_bomb.png"
    Image.new("1", (10000, 10000)).save(real)  # 20 KB file, 100 MP
    with pytest.raises(Exception, match="100.0 megapixels"):
        client.predict(handle_file(str(real)), "half", api_name=f"/{API_NAME}")


def test_upload_above_size_limit_refused(client, demo_server, tmp_path):
    path = tmp_path / "big.png"
    noise = np.random.default_rng(0).integers(0, 256, (1000, 1000, 3), dtype=np.uint8)  # ~3 MB as PNG
    Image.fromarray(noise).save(path, compress_level=0)
    assert path.stat().st_size > demo_server.settings.max_upload_mb * 2**20
    # gradio_client reads the limit from the page config and refuses before sending...
    with pytest.raises(Exception, match="exceeds the maximum file size"):
        client.predict(handle_file(str(path)), "half", api_name=f"/{API_NAME}")
    # ...and the server refuses it anyway when a client does not ask first.
    import httpx

    with path.open("rb") as f:
        resp = httpx.post(demo_server.url.rstrip("/") + "/gradio_api/upload", files={"files": ("big.png", f)}, timeout=30)
    assert resp.status_code == 413 and "maximum allowed size" in resp.text


def test_unknown_resolution_refused(client, street_jpeg):
    with pytest.raises(Exception, match="not in the list of choices"):
        client.predict(handle_file(str(street_jpeg)), "quarter", api_name=f"/{API_NAME}")


def test_still_serves_after_bad_inputs(client, street_jpeg, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    with pytest.raises(Exception, match="bad.jpg"):
        client.predict(handle_file(str(bad)), "half", api_name=f"/{API_NAME}")
    result = client.predict(handle_file(str(street_jpeg)), "half", api_name=f"/{API_NAME}")
    assert Image.open(result[0]).size == (1024, 512)


def test_server_files_are_not_reachable(demo_server):
    base = demo_server.url.rstrip("/")
    secret_paths = ["/etc/passwd", str(demo_server.checkpoint), str(__file__),
                    str(demo_server.checkpoint.parent / ".." / demo_server.checkpoint.parent.name / "small.pt")]
    for path in secret_paths:
        for route in ("/gradio_api/file=", "/file=", "/gradio_api/file/"):
            status, body = get(base + route + path)
            assert status in (403, 404), (route, path, status)
            assert b"root:" not in body and b"PK" not in body[:4]
    for probe in ("/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                  "/assets/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/gradio_api/file=../../../../etc/passwd"):
        status, body = get(base + probe)
        assert status in (400, 403, 404) and b"root:" not in body, probe


def test_api_refuses_server_paths_as_input(demo_server):
    """A client naming a server file as the image (instead of uploading) gets an error, not a segmentation."""
    import json

    base = demo_server.url.rstrip("/")
    for path in ("/etc/passwd", str(demo_server.checkpoint)):
        body = json.dumps({"data": [{"path": path, "meta": {"_type": "gradio.FileData"}}, "half"]}).encode()
        req = urllib.request.Request(f"{base}/gradio_api/call/{API_NAME}", data=body,
                                     headers={"Content-Type": "application/json"})
        event_id = json.loads(urllib.request.urlopen(req, timeout=10).read())["event_id"]
        status, stream = get(f"{base}/gradio_api/call/{API_NAME}/{event_id}")
        assert b"event: error" in stream and b"root:" not in stream, stream[:300]


def test_page_loads_nothing_from_other_hosts(demo_server):
    status, page = get(demo_server.url)
    assert status == 200
    html = page.decode()
    external = re.findall(r"""(?:src|href)=["'](https?://[^"']+)""", html)
    assert [u for u in external if not u.startswith(demo_server.url.rstrip("/"))] == []
    assert "fonts.googleapis.com" not in html and "cdn.jsdelivr" not in html


def test_analytics_off_and_private_temp_dir(demo_server):
    import gradio.analytics

    assert not gradio.analytics.analytics_enabled()
    assert demo_server.temp_dir.name.startswith("segment-demo-")
    assert (demo_server.temp_dir.stat().st_mode & 0o077) == 0  # only this user can read it


def test_importing_the_app_writes_no_stub_files():
    """Gradio writes a .pyi beside any module defining a component subclass; an installed package may be read-only."""
    from pathlib import Path

    import serve.app

    assert not Path(serve.app.__file__).with_suffix(".pyi").exists()


def test_common_photo_shapes_are_prepared_in_the_background(small_checkpoint):
    """After warm-up (the 2:1 bucket) the demo prepares the 4:3 and 3:4 buckets in a background
    thread, so a phone photo's first request finds its backend built; without a warm-up, 4:3
    (phone photos, the page's examples) comes first."""
    from segment.predict import Predictor
    from segment.sizes import buckets
    from serve.app import DemoHandlers, DemoSettings

    assert DemoSettings().prepare_aspects == ("4:3", "2:1", "3:4")
    cold = DemoHandlers(predictor=Predictor.from_checkpoint(small_checkpoint), settings=DemoSettings())
    order = []
    cold.prepare_in_background(["half"], report=order.append).join(timeout=300)
    assert [line.split(" for ")[1].split()[0] for line in order[:-1]] == ["4:3", "2:1", "3:4"]
    # The last line says the CPU is the requests' alone from now on (timings taken before share it).
    assert order[-1].startswith("segment demo: background preparation done in ")

    predictor = Predictor.from_checkpoint(small_checkpoint)
    handlers = DemoHandlers(predictor=predictor, settings=DemoSettings())
    handlers.warm_up("half")
    assert set(predictor._backends) == {(512, 1024)}
    lines = []
    thread = handlers.prepare_in_background(["half"], report=lines.append)
    assert handlers.background_busy()  # what segment demo's exit waits for, and says it waits for
    thread.join(timeout=300)
    assert not handlers.background_busy()
    assert set(predictor._backends) == {(512, 1024), buckets("half")["4:3"], buckets("half")["3:4"]}
    assert len(lines) == 3 and all(line.startswith("segment demo: prepared half for ") for line in lines[:2])
    # Stopping (segment demo does it on exit): no further bucket is started, and no "done" is claimed.
    handlers.stop_background()
    handlers.prepare_in_background(["full"], report=lines.append).join(timeout=60)
    assert len(lines) == 3 and len(predictor._backends) == 3


def test_a_big_jpeg_is_read_within_max_side_and_keeps_its_own_size(predictor, tmp_path):
    """A phone-sized JPEG is decoded at a reduced scale within ``max_side`` (segment.images.read_photo);
    the result says the photo's own size, and the downloads and the re-blend use the reduced pixels."""
    from serve.app import DemoHandlers, DemoSettings, Upload

    handlers = DemoHandlers(predictor=predictor, settings=DemoSettings(max_side=512))
    photo = tmp_path / "phone.jpg"
    y, x = np.mgrid[0:1500, 0:2000]
    Image.fromarray(np.stack([x % 256, y % 256, (x + y) % 256], axis=2).astype(np.uint8)).save(photo, quality=90)
    answer = handlers.segment(Upload(path=str(photo), data=None, name="phone.jpg"), "half")
    details = answer[6]
    assert details["original_hw"] == [1500, 2000] and details["output_hw"] == [375, 500]  # 1/4 scale
    assert "fitted from 1500x2000" in answer[3]
    assert Image.open(answer[0]).size == (500, 375) and np.asarray(Image.open(answer[5])).shape == (375, 500)
    assert handlers.reblend(answer[7], 0.3).name == "phone_overlay.jpg"  # the same pixels read again


def test_a_bucket_waiting_to_build_does_not_hold_up_requests(small_checkpoint, tmp_path):
    """A background preparation whose build waits for auto's measurement (which holds
    WORK_LOCK for seconds) must not hold the model lock meanwhile: a request whose
    backend is built is answered while the bucket still waits."""
    import threading

    from segment.autoselect import WORK_LOCK
    from segment.predict import Predictor
    from segment.sizes import buckets
    from serve.app import DemoHandlers, DemoSettings, Upload

    predictor = Predictor.from_checkpoint(small_checkpoint)
    handlers = DemoHandlers(predictor=predictor, settings=DemoSettings())
    handlers.warm_up("half")  # the 2:1 bucket is built
    photo = tmp_path / "wide.png"
    Image.fromarray(np.full((256, 512, 3), 90, np.uint8)).save(photo)
    waiting = threading.Event()
    build = predictor.build

    def slow_build(spec, size):
        waiting.set()
        return build(spec, size)  # blocks on WORK_LOCK, held below as a measurement holds it

    predictor.build = slow_build
    answered = []
    with WORK_LOCK:
        preparing = threading.Thread(target=handlers.warm_up, args=("half", "4:3"), daemon=True)
        preparing.start()
        assert waiting.wait(60)
        request = threading.Thread(
            target=lambda: answered.append(handlers.segment(Upload(path=str(photo), data=None, name="wide.png"),
                                                            "half")), daemon=True)
        request.start()
        request.join(60)
        assert answered, "a request on a built shape waited for another shape's build"
        assert preparing.is_alive() and buckets("half")["4:3"] not in predictor._backends
    preparing.join(120)
    assert buckets("half")["4:3"] in predictor._backends
    assert answered[0][6]["server_ms"].get("build", 0.0) < 1000


def test_page_runs_are_private_inline_and_draw_no_gradio_progress(demo_server):
    # The page's own config: the API is one event on a button the page does not show; the page's
    # four events that run the model (the button, a new photo, the resolution, the model) are
    # private, draw no Gradio progress (it redraws every animation frame while a request runs,
    # which took the model's CPU when the browser shares the machine), report their status to the
    # session state alone (an output's hidden status tracker still runs a per-frame timer) and mark
    # the timing box busy in the browser instead.
    with urllib.request.urlopen(demo_server.url.rstrip("/") + "/config", timeout=10) as resp:
        config = json.loads(resp.read())
    ids = {c.get("props", {}).get("elem_id"): c["id"] for c in config["components"]}
    runs = [d for d in config["dependencies"] if ids["overlay"] in d["outputs"] and ids["segmap"] in d["outputs"]]
    api = [d for d in runs if d["api_name"] == API_NAME]
    assert len(api) == 1 and api[0]["targets"][0][0] == ids["api-run"]
    page = [d for d in runs if d not in api]
    assert len(page) == 4
    assert {d["targets"][0][0] for d in page} == {ids[k] for k in ("run", "photo", "resolution", "model")}
    state = [c["id"] for c in config["components"] if c["type"] == "state"]
    assert len(state) == 1
    reblend = [d for d in config["dependencies"] if d["targets"] and d["targets"][0][0] == ids["opacity"]]
    for dep in page + reblend:
        assert dep["api_visibility"] == "private" and dep["show_progress"] == "hidden"
        assert dep["show_progress_on"] == state
    marks = [d for d in config["dependencies"] if d.get("js") and "busy" in d["js"]]
    assert sum("add('busy')" in d["js"] for d in marks) == 4
    # The mark is cleared after each run, and after a failed one by a .failure() step: the .then()
    # step did not run after an error (test_browser.py checks that a refused upload clears it).
    for dep in page:
        clears = {d["trigger_only_on_failure"] for d in marks
                  if d["trigger_after"] == dep["id"] and "remove('busy')" in d["js"]}
        assert clears == {False, True}
