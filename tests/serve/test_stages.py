"""The server's per-request breakdown: laps, the prediction's stages inside it, the page's line."""

from __future__ import annotations

import pytest

from segment.predict import Prediction
from serve.stages import StageClock, request_stages, server_line


class FakeClock:
    def __init__(self, *ticks: float) -> None:
        self.ticks = list(ticks)

    def __call__(self) -> float:
        return self.ticks.pop(0)


def _prediction(total_ms: float, **stages: float) -> Prediction:
    import numpy as np

    return Prediction(labels=np.zeros((2, 2), np.uint8), model_ms=stages.get("model", 0.0), total_ms=total_ms,
                      backend="stub", precision="fp32", input_size=(2, 2), stages_ms=stages)


def test_laps_add_up_and_repeat_names_accumulate():
    clock = StageClock(FakeClock(0.0, 0.010, 0.015, 0.040))
    assert clock.lap("read") == pytest.approx(10.0)
    clock.lap("write")
    clock.lap("write")
    assert clock.laps_ms == {"read": pytest.approx(10.0), "write": pytest.approx(30.0)}
    assert clock.total_ms == pytest.approx(40.0)


def test_the_prediction_lap_is_split_into_the_prediction_and_the_work_around_it():
    # read 5 ms, prediction lap 50 ms of which the prediction 42, encodes 3, write 1.
    clock = StageClock(FakeClock(0.0, 0.005, 0.055, 0.058, 0.059))
    for name in ("read", "prediction", "encode_overlay", "write"):
        clock.lap(name)
    stages = request_stages(clock, _prediction(42.0, resize=2.0, model=30.0, upsample_argmax=8.0, restore=2.0))
    assert stages["prediction"] == 42.0 and stages["colours"] == pytest.approx(8.0)
    booked = sum(v for k, v in stages.items() if k not in ("prediction_stages", "total"))
    assert booked == pytest.approx(stages["total"]) and stages["total"] == pytest.approx(59.0)
    assert list(stages)[:3] == ["read", "prediction", "colours"]  # request order, not lap order
    line = server_line(stages)
    assert line.startswith("Server time for this request: 59 ms = reading the photo 5 · prediction 42 (resize 2, "
                           "model 30, upsample+argmax 8, back to photo size 2)")
    assert "overlay JPEG 3" in line and "writing files 1" in line


def test_a_backend_build_shows_on_the_line_only_when_it_took_time():
    def line_with_build(build_s: float) -> str:
        clock = StageClock(FakeClock(0.0, 0.005, 0.005 + build_s, 0.050 + build_s))
        for name in ("read", "build", "prediction"):
            clock.lap(name)
        return server_line(request_stages(clock, _prediction(45.0, model=45.0)))

    assert "building the backend" not in line_with_build(0.0001)
    assert "building the backend 1200 · prediction 45" in line_with_build(1.2)
