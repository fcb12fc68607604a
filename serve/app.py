"""The Gradio 6 Blocks page of the demo, and how it is launched safely.

Safety choices, each tested in tests/serve:
- uploads are capped in bytes (``max_file_size``) and in pixels (checked from
  the header before decoding, in ``segment.images.read_photo``);
- Gradio's own image preprocessing is bypassed (``photo_input``) because it
  opens every upload with Pillow before our checks could run;
- Gradio's temporary folder is a fresh private one per server, so the file
  routes can serve nothing but this server's uploads, outputs and examples;
  the checkpoint's folder is on ``blocked_paths`` as well;
- analytics off, no server-side rendering, no MCP server, local fonts only.
"""

from __future__ import annotations

import atexit
import base64
import html
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

# Set before gradio is imported: it reads these at import and launch time.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Gradio's queue summarizes its event log for its monitoring view after every event by default:
# a pandas DataFrame of up to 10,000 past events, rebuilt in a thread right when the browser
# fetches the result's images (and the first one imports pandas). Nothing here reads it:
# summarize rarely, over a short log.
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")
os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "1000")

import gradio as gr  # noqa: E402
from gradio import utils as gr_utils  # noqa: E402
from gradio.data_classes import ImageData  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from segment.images import (  # noqa: E402
    DEFAULT_MAX_PIXELS,
    FORMATS_IN_WORDS,
    IMAGE_SUFFIXES,
    ImageError,
    blend,
    read_photo,
)
from segment.quantize import BUNDLED_PHOTOS  # noqa: E402
from serve.outputs import (  # noqa: E402
    Inline,
    encode_outputs,
    encode_overlay,
    inline_color,
    inline_overlay,
    write_file,
    write_outputs,
)
from serve.segmentation import (  # noqa: E402
    DEFAULT_MAX_SIDE,
    DEFAULT_OPACITY,
    RESOLUTIONS,
    legend_html,
    ready_backend,
    segment_photo,
    summary_dict,
    summary_markdown,
)
from serve.stages import StageClock, request_stages, server_line  # noqa: E402

EXAMPLES_DIR = BUNDLED_PHOTOS  # the package's street photos, also int8's default calibration set

# Shown under the examples (three CamVid val frames, segment/photos/README.md).
EXAMPLES_CREDIT = (
    "Example photos: CamVid, Brostow, Fauqueur, Cipolla, \"Semantic object classes in video: "
    "A high-definition ground truth database\", *Pattern Recognition Letters*, 2009; "
    "the 360x480 release of the SegNet tutorial (Badrinarayanan, Kendall, Cipolla). For research use."
)
API_NAME = "segment"


@dataclass
class DemoSettings:
    max_upload_mb: float = 20.0  # largest accepted upload, in megabytes
    max_pixels: int = DEFAULT_MAX_PIXELS  # largest accepted image, width x height
    max_side: int = DEFAULT_MAX_SIDE  # photos are fitted inside this many pixels before segmenting
    # Requests handled at once. The model runs one at a time with all the cores
    # (DemoHandlers.model_lock: a forward pass already uses every core, and the
    # OpenVINO backend's infer request must not be shared by threads); a second
    # slot overlaps one request's decoding and PNG encoding with another's model run.
    concurrency: int = 2
    queue_size: int = 64  # requests waiting beyond that; more are refused as "queue full"
    cache_age_s: int = 3600  # outputs and uploads older than this are deleted (checked as often)
    # Shape buckets (segment.sizes) prepared in the background once the page is up, at each
    # warmed-up resolution, in this order: 4:3 first (phone photos and the page's examples: the
    # likeliest first request; on an empty cache each bucket's export takes seconds), then 2:1
    # (Cityscapes; a fixed --backend prepared it before the page opened), then upright photos.
    prepare_aspects: tuple[str, ...] = ("4:3", "2:1", "3:4")


class Upload(NamedTuple):
    path: str | None  # a file in Gradio's upload folder
    data: bytes | None  # or the bytes of a data: URL (clipboard pastes)
    name: str  # the user's file name, for messages and output names


def _undecoded_upload(payload) -> Upload | None:
    """The photo input's preprocess: hand our code the uploaded file, not a decoded image.

    Gradio's ``gr.Image`` preprocessing calls ``PIL.Image.open`` on every upload:
    a non-image would fail there with a message naming a server path, and a
    decompression bomb would be judged by Pillow's limits, not ours.
    """
    if payload is None:
        return None
    name = Path(payload.orig_name or payload.path or "image").name
    if payload.path is None and payload.url and payload.url.startswith("data:"):
        _, _, encoded = payload.url.partition(",")
        return Upload(path=None, data=base64.b64decode(encoded, validate=False), name=name)
    if payload.path is None:
        raise gr.Error(f"No image received: upload a {FORMATS_IN_WORDS} file.")
    return Upload(path=payload.path, data=None, name=name)


def photo_input(**kwargs) -> gr.Image:
    """The stock image upload box with ``_undecoded_upload`` as its preprocessing.

    Set on the instance rather than in a ``gr.Image`` subclass: Gradio writes a
    ``.pyi`` stub next to the source of every component subclass when it is
    defined, which would fail (or litter) in an installed package.
    """
    box = gr.Image(type="filepath", image_mode=None, **kwargs)
    box.preprocess = _undecoded_upload
    return box


def inline_image(**kwargs) -> gr.Image:
    """An output image box that shows a ``serve.outputs.Inline`` from the ``data:`` URL it sends
    inside the result (no second request for a file), and a path as a served file, as usual
    (what the API gets). Set on the instance, as in ``photo_input``."""
    box = gr.Image(type="filepath", interactive=False, **kwargs)
    stock = box.postprocess

    def postprocess(value):
        if isinstance(value, Inline):
            # No path: Gradio passes it through as it is, and the browser decodes the URL.
            return ImageData(url=value.url(), orig_name=value.name, mime_type=value.mime)
        return stock(value)

    box.postprocess = postprocess
    return box


def _safe_stem(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem).strip("._") or "image"
    return stem[:100]


def _user_error(message: str) -> gr.Error:
    # gr.Error renders HTML and the message contains the user's file name.
    # No traceback in the server log for a user's bad file: it is not a server fault.
    return gr.Error(html.escape(message), title="Cannot segment this file", print_exception=False)


@dataclass
class DemoModel:
    """One model the page offers: ``key`` is the API's value for it, ``label`` and ``note`` what the page shows."""

    key: str  # "large", "small" (segment.bundled), or a checkpoint's name
    label: str  # "MobileNetV3-Small"
    predictor: object  # segment.predict.Predictor
    note: str = ""  # "Table 7 row 11"

    @property
    def title(self) -> str:
        return f"{self.label} ({self.note})" if self.note else self.label

    @classmethod
    def of(cls, predictor) -> "DemoModel":
        """A model known only by its predictor (``segment demo --checkpoint``): named by its checkpoint."""
        return cls(key=predictor.name, label=predictor.name, predictor=predictor)


class DemoHandlers:
    """The functions the page's events call, bound to the page's models (one or more) and its limits.

    ``models``: the first is the default (selected when the page opens, and the one
    an API call without a model runs); ``predictor`` alone is one model.
    """

    def __init__(self, *, predictor=None, settings: DemoSettings, models: list[DemoModel] | None = None) -> None:
        if models is None:
            if predictor is None:
                raise TypeError("DemoHandlers needs a predictor or models")
            models = [DemoModel.of(predictor)]
        if not models or len({m.key for m in models}) != len(models):
            raise ValueError(f"models need distinct keys: {[m.key for m in models]}")
        self.models: dict[str, DemoModel] = {m.key: m for m in models}
        self.default_model = models[0].key
        self.predictor = models[0].predictor  # the default model's
        self.settings = settings
        self.max_bytes = int(settings.max_upload_mb * 1024 * 1024)
        # One forward pass at a time, whichever the model: see DemoSettings.concurrency. Backends
        # are built before it is taken (serve.segmentation.ready_backend): an export or a wait
        # for auto's measurement holds up only the request or bucket that needs that shape.
        self.model_lock = threading.Lock()
        # The latest model time (ms) of each model at each run shape, requests and preparation alike:
        # what the page compares ("Small 18 ms, Large 52 ms at 512x704"). Shapes: a few buckets per size.
        self.model_ms: dict[tuple[int, int], dict[str, float]] = {}
        self._prepared: set[tuple[str, str, str]] = set()  # (model, resolution, aspect) already warmed up
        self._stop = threading.Event()  # set by stop_background
        self._background: list[threading.Thread] = []

    def model_for(self, key: str | None) -> DemoModel:
        if key in (None, ""):
            return self.models[self.default_model]
        if key not in self.models:
            raise _user_error(f"model must be one of {', '.join(self.models)}, not {key!r}")
        return self.models[key]

    def _record(self, key: str, prediction) -> None:
        self.model_ms.setdefault(tuple(prediction.input_size), {})[key] = prediction.model_ms

    def warm_up(self, resolution: str, aspect: str = "2:1", model: str | None = None) -> float:
        """Run ``model`` (default: the default model) at ``resolution`` for a photo of ``aspect``:
        builds/selects the backend of that shape bucket (see segment.sizes); returns seconds taken.
        A second, timed run gives the page that model's time at that shape before any request."""
        import time

        from segment.sizes import buckets

        entry = self.model_for(model)
        start = time.perf_counter()
        shape = buckets(resolution)[aspect]
        blank = np.zeros((*shape, 3), np.uint8)
        ready_backend(entry.predictor, shape, resolution=resolution, max_side=self.settings.max_side)
        with self.model_lock:
            entry.predictor.predict(blank, size=resolution)
            seconds = time.perf_counter() - start
            self._record(entry.key, entry.predictor.predict(blank, size=resolution))
        self._prepared.add((entry.key, resolution, aspect))
        return seconds

    def prepare_in_background(self, resolutions: list[str], aspects=None, *, report=print) -> threading.Thread:
        """Prepare, once the page is up, what the warm-up before it left out: at each of
        ``resolutions``, every model's common shape buckets (``DemoSettings.prepare_aspects``, in
        that order) and its 2:1 bucket, one at a time in a background thread, the default
        model first. A first photo of those shapes, or a first request to another model, then
        does not wait for its backend to be exported and compiled. Each builds its backend outside
        the model lock and takes the lock only for its two runs, so a request waits at most for those."""
        aspects = self.settings.prepare_aspects if aspects is None else aspects
        several = len(self.models) > 1

        def work() -> None:
            start = time.perf_counter()
            prepare_all()
            if not self._stop.is_set():  # timings taken from here on do not share the CPU with it
                report(f"segment demo: background preparation done in {time.perf_counter() - start:.1f} s")

        def prepare_all() -> None:
            for resolution in resolutions:
                for entry in self.models.values():
                    for aspect in dict.fromkeys((*aspects, "2:1")):  # 2:1 always, last if not listed
                        if (entry.key, resolution, aspect) in self._prepared:
                            continue
                        if self._stop.is_set():
                            return
                        which = f" ({entry.label})" if several else ""
                        try:
                            seconds = self.warm_up(resolution, aspect, entry.key)
                        except Exception as exc:  # a bucket that fails here fails again, visibly, on its first request
                            report(f"segment demo: could not prepare {resolution} {aspect}{which}: {exc}")
                            continue
                        report(f"segment demo: prepared {resolution} for {aspect} photos{which} in {seconds:.1f} s")

        thread = threading.Thread(target=work, name="prepare-buckets", daemon=True)
        self._background.append(thread)
        thread.start()
        return thread

    def background_busy(self) -> bool:
        """Whether a bucket is being prepared or a model's auto selection is measuring."""
        waits = [getattr(e.predictor, "wait_background", None) for e in self.models.values()]
        return any(t.is_alive() for t in self._background) or any(w is not None and not w(0) for w in waits)

    def stop_background(self, timeout: float = 120.0) -> None:
        """Let the background preparation finish the bucket it is on and stop, waiting at most
        ``timeout`` seconds in all; call before exiting (a thread still inside the engines at
        interpreter shutdown can abort the process)."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        for thread in self._background:
            thread.join(max(0.0, deadline - time.monotonic()))
        for entry in self.models.values():  # backend="auto" measures in a thread of its own
            stop = getattr(entry.predictor, "stop_background", None)
            if stop is not None:
                stop(max(0.0, deadline - time.monotonic()))

    def load(self, upload: Upload):
        if upload.data is not None:
            if len(upload.data) > self.max_bytes:
                raise _user_error(f"{upload.name}: larger than the {self.settings.max_upload_mb:g} MB upload limit")
            source = upload.data
        else:
            size = os.path.getsize(upload.path)
            if size > self.max_bytes:
                raise _user_error(f"{upload.name}: {size / 2**20:.1f} MB is larger than the "
                                  f"{self.settings.max_upload_mb:g} MB upload limit")
            source = upload.path
        try:
            return read_photo(source, max_side=self.settings.max_side, max_pixels=self.settings.max_pixels,
                              name=upload.name)
        except ImageError as exc:
            raise _user_error(str(exc)) from None

    def segment(self, image: Upload | None, resolution: str, model: str | None = None,
                opacity: float = DEFAULT_OPACITY):
        """The ``segment`` API: (image, "half"|"full"[, model[, opacity]]) -> overlay, map, legend, summary,
        files, JSON; every image a file.

        ``model``: a key of ``self.models`` ("large", "small"); left out, the default model runs.
        ``opacity``: of the colour map over the photo in the overlay (the page's slider)."""
        return self._answer(image, resolution, model, opacity, inline=False)

    def segment_page(self, image: Upload | None, resolution: str, model: str | None = None,
                     opacity: float = DEFAULT_OPACITY):
        """The page's own run: as ``segment``, with the overlay and the map sent inside the result."""
        return self._answer(image, resolution, model, opacity, inline=True)

    def _answer(self, upload: Upload | None, resolution: str, model: str | None, opacity: float, *, inline: bool):
        if upload is None:
            return (None,) * 8
        if resolution not in RESOLUTIONS:
            raise _user_error(f"resolution must be one of {', '.join(RESOLUTIONS)}, not {resolution!r}")
        entry = self.model_for(model)
        clock = StageClock()
        photo = self.load(upload)
        clock.lap("read")
        ready_backend(entry.predictor, photo.pixels.shape[:2], resolution=resolution, max_side=self.settings.max_side)
        clock.lap("build")
        with self.model_lock:
            clock.lap("wait")
            result = segment_photo(entry.predictor, photo.pixels, resolution=resolution, max_side=self.settings.max_side,
                                   original_hw=photo.original_hw)
            self._record(entry.key, result.prediction)
            times = dict(self.model_ms[tuple(result.prediction.input_size)])
        clock.lap("prediction")  # request_stages splits it: the prediction, and colours and legend around it
        encoded = encode_outputs(result, entry.predictor.palette, opacity, clock)
        # Every file is written once, under a fresh folder: Gradio's own saving of returned
        # arrays writes to a path named by the content's hash, non-atomically, so two identical
        # results at once (two users clicking the same example) could serve a half-written file.
        folder = _request_folder()
        stem = _safe_stem(upload.name)
        files = write_outputs(folder, stem, encoded, overlay=not inline, clock=clock)
        source = _keep_source(folder, upload)
        summary, details = self._describe(entry, result, times)
        clock.lap("summary")
        stages = request_stages(clock, result.prediction)
        details["server_ms"] = stages
        summary += "\n\n" + server_line(stages)
        if inline:
            overlay, segmap = inline_overlay(stem, encoded.overlay), inline_color(stem, encoded.color)
        else:
            overlay, segmap = str(files.overlay), str(files.color)
        return (
            overlay,
            segmap,
            legend_html(result.legend),
            summary,
            str(files.color),
            str(files.labels),
            details,
            # session state: paths only, a few bytes per user
            {"folder": str(folder), "stem": stem, "source": str(source), "name": upload.name},
        )

    def _describe(self, entry: DemoModel, result, times: dict[str, float]) -> tuple[str, dict]:
        """The result's timing text and its JSON: the model, the backend serving, the models compared."""
        summary = summary_markdown(result, entry.title)
        details = summary_dict(result, entry.predictor.name)
        details["model_choice"] = entry.key
        serving = serving_status(entry.predictor, result.prediction)
        if serving is not None:
            summary += "\n\n" + serving[0]
            details["serving"] = serving[1]
        if len(self.models) > 1:
            times = {k: round(v, 2) for k, v in times.items()}  # the text and the JSON show the same figures
            summary += "\n\n" + self.compare_markdown(entry.key, result.prediction, times)
            details["model_ms_at_this_size"] = times
        return summary, details

    def compare_markdown(self, key: str, prediction, times: dict[str, float]) -> str:
        """Each model's latest model time at this request's run shape, on this server: how much
        faster one is than another, without running both on every request."""
        h, w = prediction.input_size
        parts = []
        for other in self.models.values():
            ms = times.get(other.key)
            text = f"{html.escape(other.label)} " + ("not run at this size yet: pick it to compare" if ms is None
                                                      else f"{ms:.0f} ms")
            parts.append(f"**{text}** (this request)" if other.key == key else text)
        line = f"Model time at {h}x{w}, latest run of each model on this server: " + " · ".join(parts)
        known = sorted((ms, m.label) for m in self.models.values() if (ms := times.get(m.key)) is not None)
        if len(known) >= 2 and known[0][0] > 0:
            (fast_ms, fast), (slow_ms, slow) = known[0], known[-1]
            line += f". {html.escape(fast)} is {slow_ms / fast_ms:.1f}x faster than {html.escape(slow)} here."
        return line

    def reblend(self, state: dict | None, opacity: float):
        """The overlay at another opacity, from the last result's files (no model run): the photo is
        read again from its upload, the colours from the colour map's PNG."""
        if not state:
            return None
        folder = Path(state["folder"])
        try:
            photo = read_photo(state["source"], max_side=self.settings.max_side, max_pixels=self.settings.max_pixels,
                               name=state.get("name", "image")).pixels
            color = np.asarray(Image.open(folder / f"{state['stem']}_color.png").convert("RGB"))
        except (OSError, ImageError):  # deleted by the cache clean-up: the user must segment again
            raise _user_error("this result has expired; segment the photo again") from None
        if photo.shape != color.shape:
            raise _user_error("this result has expired; segment the photo again")
        return inline_overlay(state["stem"], encode_overlay(blend(photo, color, opacity)))


def serving_status(predictor, prediction) -> tuple[str, dict] | None:
    """What serves this request's run shape now, as a line for the page and a dict for the API:
    with ``backend="auto"``, whether it is the default while the candidates are being measured,
    or auto's choice and why. None for a predictor that cannot say (a stand-in)."""
    state_of = getattr(predictor, "serving_state", None)
    if state_of is None:
        return None
    state = state_of(tuple(prediction.input_size))
    h, w = prediction.input_size
    line = f"Backend serving {h}x{w} now: **{html.escape(state.backend)} {html.escape(state.precision)}**"
    rest = state.describe().removeprefix(f"{state.backend} {state.precision}")
    return line + html.escape(rest) + ".", {"backend": state.backend, "precision": state.precision,
                                            "how": state.how, "measuring": state.measuring, "reason": state.reason}


def _keep_source(folder: Path, upload: Upload) -> Path:
    """Where the photo can be read again for a re-blend: its upload, or (a clipboard paste) a copy here."""
    if upload.path is not None:
        return Path(upload.path)
    return write_file(folder / "source.bin", upload.data)


def _request_folder() -> Path:
    """A fresh folder inside Gradio's (private) upload folder: served as this app's own outputs
    and deleted with the rest of the cache."""
    cache = Path(gr_utils.get_upload_folder())
    cache.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="out-", dir=cache))


# A run in progress is shown by a static mark on the timing box, set and cleared in the browser.
# Gradio's own progress display (its "minimal" timer included) redraws on every animation frame
# while a request runs, for each output: with the browser on a 2-core server that took about
# 100 ms of CPU per half-resolution request, from the model (docs/demo.md). Hidden, each output's
# status tracker still runs a timer on every animation frame while its request is pending, and
# every status change copies each output's value (the overlay's data: URL included) in the page:
# the page's runs report their status to the session state alone, which draws nothing.
BUSY_ON_JS = "() => { document.getElementById('summary')?.classList.add('busy'); }"
BUSY_OFF_JS = "() => { document.getElementById('summary')?.classList.remove('busy'); }"


def _page_run(trigger, *, fn, inputs, outputs, status_on: gr.State, settings: DemoSettings) -> None:
    """One page event that runs the model: private (the API is ``segment``), no Gradio progress
    display (its status goes to ``status_on``), the timing box marked busy from the trigger until
    the result (or error) is in. With Gradio 6.31 the ``.then()`` step did not run after an error
    (a refused upload left the box marked busy), so a ``.failure()`` step clears it too."""
    trigger(fn=None, js=BUSY_ON_JS, queue=False, api_visibility="private")
    run = trigger(fn=fn, inputs=inputs, outputs=outputs, api_visibility="private",
                  concurrency_limit=settings.concurrency, concurrency_id="model", show_progress="hidden",
                  show_progress_on=status_on)
    run.then(fn=None, js=BUSY_OFF_JS, queue=False, api_visibility="private")
    run.failure(fn=None, js=BUSY_OFF_JS, queue=False, api_visibility="private")


CSS = """
.legend { border-collapse: collapse; width: 100%; }
.legend td, .legend th { padding: 2px 8px; }
.credit, .credit p { font-size: 0.8em; opacity: 0.8; }
#summary.busy { opacity: 0.5; }
#summary.busy::before { content: "Segmenting\\2026"; font-weight: 600; }
.swatch { display: inline-block; width: 1.2em; height: 1.2em; border: 1px solid #8886; vertical-align: middle; }
"""


def build_app(*, predictor=None, settings: DemoSettings | None = None, examples: list[Path] | None = None,
              handlers: DemoHandlers | None = None, models: list[DemoModel] | None = None) -> gr.Blocks:
    """The demo page; launch it with ``launch_app`` (which sets the file-access rules).

    The models: ``handlers``' own, else ``models`` (the first is the default), else ``predictor``
    alone. With more than one the page shows a choice; with one it names the model."""
    settings = settings or DemoSettings()
    handlers = handlers or DemoHandlers(predictor=predictor, settings=settings, models=models)
    models = list(handlers.models.values())
    default = handlers.models[handlers.default_model]
    examples = list_examples() if examples is None else examples
    if len(models) == 1:
        which = f"model **{html.escape(default.title)}**"
        if default.predictor.name != default.label:
            which += f" (`{html.escape(default.predictor.name)}`)"
    else:
        which = (f"{len(models)} models: " + " and ".join(f"**{html.escape(m.title)}**" for m in models)
                 + " (pick one under the photo; each result compares their times)")
    with gr.Blocks(title="Street-scene segmentation", analytics_enabled=False,
                   delete_cache=(settings.cache_age_s, settings.cache_age_s)) as demo:
        gr.Markdown(
            "# Street-scene segmentation\n"
            f"MobileNetV3 + LR-ASPP (Howard et al., 2019), {len(default.predictor.classes)} classes, {which}. "
            f"Upload a street photo ({FORMATS_IN_WORDS}, up to "
            f"{settings.max_upload_mb:g} MB and {settings.max_pixels / 1e6:.0f} megapixels)."
        )
        state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1):
                photo = photo_input(label="Street photo", sources=["upload", "clipboard"], elem_id="photo")
                # Hidden with one model: still an input, so the API's optional third argument exists.
                model = gr.Radio([(m.title, m.key) for m in models], value=default.key, label="Model",
                                 elem_id="model", visible=len(models) > 1)
                # Measured on held-out CamVid drives (docs/train.md, "Fitted inside the frame").
                resolution = gr.Radio([(label, key) for key, label in RESOLUTIONS.items()], value="half",
                                      label="Model resolution", elem_id="resolution",
                                      info="Half is where the bundled weights do best overall; full runs 4x "
                                           "the pixels and, on 2:1 photos, scores well below half.")
                run = gr.Button("Segment", variant="primary", elem_id="run")
                opacity = gr.Slider(0.0, 1.0, value=DEFAULT_OPACITY, step=0.05, label="Overlay opacity",
                                    elem_id="opacity")
                if examples:
                    camvid = any(p.name.startswith("camvid_") for p in examples)
                    gr.Examples([[str(p), "half"] for p in examples], inputs=[photo, resolution],
                                label="Examples: CamVid street photos (click one)" if camvid else "Examples")
                    if camvid:
                        gr.Markdown(EXAMPLES_CREDIT, elem_id="examples-credit", elem_classes=["credit"])
            with gr.Column(scale=2):
                overlay = inline_image(label="Overlay", elem_id="overlay")
                segmap = inline_image(label="Segmentation map", elem_id="segmap")
                with gr.Row():
                    legend = gr.HTML(label="Classes present", elem_id="legend")
                    summary = gr.Markdown(label="Timing", elem_id="summary")
                with gr.Row():
                    color_file = gr.File(label="Colour map (PNG)", interactive=False, elem_id="color-file")
                    label_file = gr.File(label="Label map (PNG of trainIds)", interactive=False,
                                         elem_id="label-file")
                with gr.Accordion("Result as JSON", open=False):
                    details = gr.JSON(label="Details", elem_id="details")

        outputs = [overlay, segmap, legend, summary, color_file, label_file, details, state]
        inputs = [photo, resolution, model, opacity]
        # The slider's opacity goes into the request itself: one round trip per result, no re-blend after it.
        # The API: files for every image, on a button the page does not show.
        api_run = gr.Button(visible=False, elem_id="api-run")
        api_run.click(fn=handlers.segment, inputs=inputs, outputs=outputs, api_name=API_NAME,
                      concurrency_limit=settings.concurrency, concurrency_id="model", show_progress="hidden")
        # The page: the button, a new photo (upload or example), the resolution or the model runs
        # the model, with the overlay and the map inside the result.
        for trigger in (run.click, photo.change, resolution.change, model.change):
            _page_run(trigger, fn=handlers.segment_page, inputs=inputs, outputs=outputs, status_on=state,
                      settings=settings)
        # Dragging the slider re-blends the last result without the model; only the last value waits.
        opacity.change(fn=handlers.reblend, inputs=[state, opacity], outputs=overlay, api_visibility="private",
                       queue=False, trigger_mode="always_last", show_progress="hidden", show_progress_on=state)
    demo.queue(default_concurrency_limit=settings.concurrency, max_size=settings.queue_size)
    return demo


def list_examples() -> list[Path]:
    return sorted(p for p in EXAMPLES_DIR.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def private_temp_dir() -> Path:
    """Point Gradio's upload/output cache at a fresh folder only this server uses.

    By default every Gradio app on the machine shares /tmp/gradio and any file
    there can be fetched by URL; a private folder (mode 0700) keeps other apps'
    files, and ours from theirs, out of reach. Must run before the Blocks are built.
    """
    folder = Path(tempfile.mkdtemp(prefix="segment-demo-"))
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def launch_app(demo: gr.Blocks, *, host: str = "127.0.0.1", port: int | None = None,
               settings: DemoSettings | None = None, blocked: list[Path] = (),
               block_thread: bool = True):
    """Serve ``demo``; returns (app, local_url). ``blocked``: extra paths never served."""
    settings = settings or DemoSettings()
    blocked_paths = [str(Path(p).resolve()) for p in blocked]
    return demo.launch(
        server_name=host,
        server_port=port,
        max_file_size=int(settings.max_upload_mb * 1024 * 1024),
        allowed_paths=[str(EXAMPLES_DIR)],  # the shipped example photos, nothing else of the package
        blocked_paths=blocked_paths,
        show_error=False,  # unexpected exceptions show as a generic error, not server internals
        ssr_mode=False,  # no Node.js server; the page is the prebuilt static bundle
        mcp_server=False,
        pwa=False,
        share=False,
        quiet=True,
        css=CSS,
        theme=gr.themes.Default(),
        prevent_thread_lock=not block_thread,
    )[:2]
