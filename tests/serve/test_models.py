"""The demo with two models (large and small): the choice on the page, the model named in each result,
both models' times compared; with one model the choice is hidden."""

from __future__ import annotations

import json
import urllib.request

import pytest
from gradio_client import Client, handle_file

from segment.predict import Predictor
from serve.app import API_NAME, DemoHandlers, DemoModel, DemoSettings, build_app, launch_app

pytestmark = pytest.mark.filterwarnings("ignore::Warning")


def page_component(url: str, elem_id: str) -> dict:
    """The props of the component ``elem_id`` in the page's config (what the browser renders)."""
    with urllib.request.urlopen(url.rstrip("/") + "/config", timeout=10) as resp:
        config = json.loads(resp.read())
    (props,) = [c["props"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id]
    return props


def two_models(folder, write) -> list[DemoModel]:
    """Stand-ins for the bundled pair: two tiny random checkpoints (the small preset, different seeds)."""
    large = Predictor.from_checkpoint(write(folder / "camvid_mnv3_lraspp.pt", seed=1))
    small = Predictor.from_checkpoint(write(folder / "camvid_mnv3small_lraspp.pt", seed=2))
    return [DemoModel(key="large", label="MobileNetV3-Large", note="Table 7 row 8", predictor=large),
            DemoModel(key="small", label="MobileNetV3-Small", note="Table 7 row 11", predictor=small)]


@pytest.fixture(scope="module")
def two_model_server(demo_server, tmp_path_factory, checkpoint_writer):
    """A second in-process server (beside the session's one-model server, in its private temp folder)."""
    settings = DemoSettings(max_upload_mb=2.0, max_pixels=4_000_000)
    demo = build_app(models=two_models(tmp_path_factory.mktemp("two"), checkpoint_writer), settings=settings)
    _, url = launch_app(demo, host="127.0.0.1", port=None, settings=settings, block_thread=False)
    try:
        yield url
    finally:
        demo.close()


def test_two_models_show_the_choice(two_model_server):
    radio = page_component(two_model_server, "model")
    assert radio["visible"] is True and radio["value"] == "large"
    assert [key for _, key in radio["choices"]] == ["large", "small"]
    assert [label for label, _ in radio["choices"]] == ["MobileNetV3-Large (Table 7 row 8)",
                                                        "MobileNetV3-Small (Table 7 row 11)"]
    with urllib.request.urlopen(two_model_server.rstrip("/") + "/config", timeout=10) as resp:
        assert ("2 models: **MobileNetV3-Large (Table 7 row 8)** and **MobileNetV3-Small (Table 7 row 11)**"
                in resp.read().decode())


def test_one_model_hides_the_choice_and_names_the_model(demo_server, predictor):
    radio = page_component(demo_server.url, "model")
    assert radio["visible"] is False and [key for _, key in radio["choices"]] == [predictor.name]
    with urllib.request.urlopen(demo_server.url.rstrip("/") + "/config", timeout=10) as resp:
        assert f"model **{predictor.name}**" in resp.read().decode()  # the page's heading says which


def test_each_request_names_the_model_that_ran_and_compares_times(two_model_server, street_jpeg, tmp_path):
    client = Client(two_model_server, verbose=False, download_files=str(tmp_path))
    photo = handle_file(str(street_jpeg))
    # No model argument (the one-model API): the default, large.
    *_, summary, _, _, details = client.predict(photo, "half", api_name=f"/{API_NAME}")
    assert details["model_choice"] == "large" and details["model"] == "camvid_mnv3_lraspp"
    assert summary.startswith("**MobileNetV3-Large (Table 7 row 8)** on **torch**")

    *_, summary, _, _, details = client.predict(photo, "half", "small", api_name=f"/{API_NAME}")
    assert details["model_choice"] == "small" and details["model"] == "camvid_mnv3small_lraspp"
    assert summary.startswith("**MobileNetV3-Small (Table 7 row 11)** on **torch**")
    # Both models have run at this shape: the result shows each one's latest time and the ratio.
    times = details["model_ms_at_this_size"]
    assert set(times) == {"large", "small"} and all(ms > 0 for ms in times.values())
    assert "Model time at 512x1024, latest run of each model on this server" in summary
    assert f"**MobileNetV3-Small {times['small']:.0f} ms** (this request)" in summary
    assert f"MobileNetV3-Large {times['large']:.0f} ms" in summary and "x faster than" in summary

    *_, summary, _, _, details = client.predict(photo, "full", "small", api_name=f"/{API_NAME}")
    assert "MobileNetV3-Large not run at this size yet" in summary and "faster" not in summary

    with pytest.raises(Exception, match="not in the list of choices"):
        client.predict(photo, "half", "medium", api_name=f"/{API_NAME}")


def test_background_preparation_warms_the_other_model(tmp_path, checkpoint_writer):
    models = two_models(tmp_path, checkpoint_writer)
    handlers = DemoHandlers(models=models, settings=DemoSettings())
    handlers.warm_up("half")  # what segment demo does before the page opens: the default model only
    assert set(models[0].predictor._backends) == {(512, 1024)} and not models[1].predictor._backends
    lines = []
    handlers.prepare_in_background(["half"], aspects=(), report=lines.append).join(timeout=300)
    assert len(lines) == 2 and lines[0].startswith("segment demo: prepared half for 2:1 photos (MobileNetV3-Small)")
    assert set(models[1].predictor._backends) == {(512, 1024)}
    assert set(handlers.model_ms[(512, 1024)]) == {"large", "small"}  # the page can compare from the first request
    handlers.stop_background()
