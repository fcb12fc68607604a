"""Where one demo request's server time goes, stage by stage, for the page and the API.

``StageClock`` takes laps; ``request_stages`` merges them with the prediction's own
stages (``Prediction.stages_ms``) into one ordered breakdown that adds up to the
request's time on the server; ``server_line`` is that breakdown in words.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# The prediction's stages as the page names them (segment.predict.Prediction.stages_ms).
PREDICTION_STAGES = {"resize": "resize", "model": "model", "upsample_argmax": "upsample+argmax",
                     "restore": "back to photo size", "other": "backend lookup"}
# The handler's laps as the page names them, in request order.
REQUEST_STAGES = {"read": "reading the photo", "build": "building the backend", "wait": "waiting for the model",
                  "prediction": "prediction", "colours": "colours and legend", "encode_overlay": "overlay JPEG",
                  "encode_color": "colour map PNG", "encode_labels": "label PNG", "write": "writing files",
                  "summary": "summary"}

# Laps that take time only on some requests (a shape's first); the line leaves them out otherwise.
OCCASIONAL_STAGES = ("build",)


class StageClock:
    """Laps of one request: ``lap(name)`` books the time since the previous lap under ``name``."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._start = self._last = clock()
        self.laps_ms: dict[str, float] = {}

    def lap(self, name: str) -> float:
        now = self._clock()
        ms = (now - self._last) * 1e3
        self.laps_ms[name] = self.laps_ms.get(name, 0.0) + ms
        self._last = now
        return ms

    @property
    def total_ms(self) -> float:
        return (self._last - self._start) * 1e3


def request_stages(clock: StageClock, prediction) -> dict:
    """The request's breakdown in ms: the handler's laps, with the ``prediction`` lap split into
    the prediction itself (its stages under ``prediction_stages``) and what the handler did
    around it in the same lap (fitting the photo, colours, legend: under ``colours``)."""
    laps = dict(clock.laps_ms)
    around = laps.pop("prediction", 0.0) - prediction.total_ms
    laps["colours"] = laps.get("colours", 0.0) + max(0.0, around)
    stages = {"prediction": round(prediction.total_ms, 2),
              "prediction_stages": {k: round(v, 2) for k, v in prediction.stages_ms.items()}}
    stages.update({k: round(v, 2) for k, v in laps.items()})
    stages["total"] = round(clock.total_ms, 2)
    return {k: stages[k] for k in (*REQUEST_STAGES, "prediction_stages", "total") if k in stages}


def server_line(stages: dict) -> str:
    """'Server time for this request: 41 ms = reading the photo 2 · ... · prediction 34 (model 22, ...) · ...'."""
    parts = []
    for key, name in REQUEST_STAGES.items():
        if key not in stages or (key in OCCASIONAL_STAGES and stages[key] < 0.5):
            continue
        text = f"{name} {stages[key]:.0f}"
        if key == "prediction" and stages.get("prediction_stages"):
            inner = ", ".join(f"{PREDICTION_STAGES.get(k, k)} {v:.0f}" for k, v in stages["prediction_stages"].items())
            text += f" ({inner})"
        parts.append(text)
    return f"Server time for this request: {stages['total']:.0f} ms = " + " · ".join(parts) + " (ms)."
