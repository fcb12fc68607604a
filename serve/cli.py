"""``segment demo``: launch the Gradio web demo (the bundled models by default).

Without ``--checkpoint`` the page offers every bundled model present
(``segment.bundled``: large, small), ``--model`` being the one it opens with
(default large). With ``--checkpoint`` it serves that model alone.

With a fixed ``--backend`` the default model is prepared before the page opens
and the others in the background once it is up. With ``--backend auto`` the
page opens at once: every model serves a default backend (``Predictor.default_spec``)
while auto measures the candidates in a background thread and swaps the
fastest in, so a fresh machine answers in seconds instead of waiting for every
candidate to be exported and timed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
from pathlib import Path


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """SIGTERM (systemd, docker stop, timeout) ends the server like Ctrl+C does, so Gradio
    closes cleanly and the private temp folder is removed at exit; processes forked from
    this one keep the default SIGTERM.

    The second half matters: OpenVINO's usage telemetry sends from a forked child and, at
    exit, multiprocessing terminates such children with SIGTERM and joins them. A child that
    inherited the handler above, blocked in C code (a DNS lookup on a machine without a
    network), never ran it, and the demo hung at exit waiting for it.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    os.register_at_fork(after_in_child=_default_sigterm)


def _default_sigterm() -> None:
    if signal.getsignal(signal.SIGTERM) is _interrupt:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from segment.commands.options import add_model_arguments

    add_model_arguments(parser, model_help="the bundled model the page opens with (the others present are "
                                           "offered beside it)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 for everyone)")
    parser.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    parser.add_argument("--backend", choices=("auto", "torch", "onnxruntime", "openvino"), default="auto",
                        help="inference engine; auto = the fastest on this machine whose labels match torch fp32 "
                             "(a default serves at once while the candidates are measured in the background; the "
                             "choice is remembered and re-checked on real requests; default: auto)")
    parser.add_argument("--reselect", action="store_true",
                        help="with --backend auto: measure the candidates again instead of reusing the remembered "
                             "choice (see 'segment backends')")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="folder for exported models and auto's choices (default: $MNV3_LRASPP_CACHE or "
                             "~/.cache/mnv3-lraspp)")
    parser.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload in MB (default: 20)")
    parser.add_argument("--max-pixels", type=int, default=None,
                        help="largest image in pixels, checked before decoding (default: 50 million)")
    parser.add_argument("--concurrency", type=int, default=2,
                        help="requests handled at once; the model itself runs one at a time with all cores (default: 2)")
    # Both by default: preparing a size exports and compiles its backend (seconds on an empty
    # cache), and a user's first request should not be the one that waits for it.
    parser.add_argument("--warm-up", choices=("half", "full", "both", "none"), default="both",
                        help="resolutions to prepare (default: both; before serving with a fixed --backend, "
                             "right after the page is up with auto; one not prepared is prepared by its first "
                             "request)")


def run(args: argparse.Namespace) -> int:
    from segment.errors import UserError

    if args.max_upload_mb <= 0:
        raise UserError("--max-upload-mb must be positive")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from serve.app import DemoHandlers, DemoSettings, build_app, launch_app, private_temp_dir

    settings = DemoSettings(max_upload_mb=args.max_upload_mb)
    if args.max_pixels is not None:
        settings.max_pixels = args.max_pixels
    if args.concurrency < 1:
        raise UserError("--concurrency must be at least 1")
    settings.concurrency = args.concurrency
    if args.reselect and args.backend != "auto":
        raise UserError(f"--reselect measures auto's candidates; it needs --backend auto, not {args.backend}")
    if args.cache_dir is not None:  # every predictor's default cache (segment.backends.cache)
        from segment.backends.cache import ENV_VAR

        os.environ[ENV_VAR] = str(args.cache_dir.resolve())

    models, checkpoints = _load_models(args)
    predictor = models[0].predictor
    handlers = DemoHandlers(models=models, settings=settings)
    warmed = {"half": ["half"], "full": ["full"], "both": ["half", "full"], "none": []}[args.warm_up]
    if args.backend == "auto":
        _serve_while_selecting(models, reselect=args.reselect)
    else:
        _warm_up_before_serving(handlers, models[0], warmed, backend=args.backend)
    temp_dir = private_temp_dir()
    stop_on_sigterm()
    demo = build_app(settings=settings, handlers=handlers)
    others = "".join(f"; also {m.title}, prepared in the background" for m in models[1:])
    blocked = {Path(c).resolve().parent for c in checkpoints}
    for m in models:
        blocked.update(_export_cache(m.predictor))
    try:
        launch_app(demo, host=args.host, port=args.port, settings=settings, blocked=sorted(blocked),
                   block_thread=False)
        # Only now: an address that is taken says so instead of this.
        print(f"segment demo: {predictor.name} on {_backend_line(predictor)}{others}; "
              f"open http://{args.host}:{args.port} (Ctrl+C to stop)", flush=True)
        # The page is up: the other common photo shapes (4:3, 3:4) and the other models are prepared
        # meanwhile (with auto: the warmed-up resolutions too, each starting its background selection).
        if warmed:
            handlers.prepare_in_background(warmed, report=lambda line: print(line, flush=True))
        demo.block_thread()
    except OSError as exc:
        # Gradio's own wording for a taken port speaks of launch() and its parameters, not of this command.
        reason = "something else listens there" if "Cannot find empty port" in str(exc) else str(exc)
        raise UserError(f"cannot listen on {args.host}:{args.port} ({reason}); pick another --port") from None
    except KeyboardInterrupt:
        # A signal that lands while launch() is still starting up (before Gradio's own
        # loop catches it) is the same request to stop: close the server, exit 0.
        demo.close()
        print("segment demo: stopped", flush=True)
    finally:
        finish_background(handlers, temp_dir=temp_dir)
    return 0


STOP_GRACE_S = 5.0  # how long an exit waits for the background work to reach a stopping point


def finish_background(handlers, *, temp_dir: Path | None = None, grace_s: float = STOP_GRACE_S) -> None:
    """At exit: give the background work ``grace_s`` to finish the step it is on, then quit
    without it, as a second Ctrl+C or SIGTERM does at once.

    Waiting for it outright could take half a minute (an int8 calibration at full), longer
    than ``docker stop`` waits before its SIGKILL. Quitting skips the interpreter's shutdown
    (``os._exit``), which a thread still inside an engine can abort. Nothing is lost: every
    file is written atomically, so an export cut short leaves no model that loads, and the
    next start does it again.
    """
    if not handlers.background_busy():
        return
    print(f"segment demo: stopping the background work (up to {grace_s:g} s; Ctrl+C again to quit now)",
          flush=True)
    try:
        handlers.stop_background(timeout=grace_s)
    except KeyboardInterrupt:
        _quit_now(temp_dir, code=130)
    if handlers.background_busy():
        _quit_now(temp_dir, code=0)


def _quit_now(temp_dir: Path | None, *, code: int) -> None:
    if temp_dir is not None:
        shutil.rmtree(temp_dir, ignore_errors=True)  # what atexit would have removed
    print("segment demo: quit without waiting for the export in progress (the next start redoes it)", flush=True)
    os._exit(code)


def _warm_up_before_serving(handlers, model, resolutions: list[str], *, backend: str) -> None:
    for resolution in resolutions:
        print(f"segment demo: preparing {model.title} at {resolution} resolution (backend {backend}) ...", flush=True)
        print(f"segment demo: ready at {resolution} in {handlers.warm_up(resolution):.1f} s", flush=True)


def _serve_while_selecting(models, *, reselect: bool) -> None:
    """``--backend auto``: no preparation before the page; each predictor serves its default at
    once and measures in the background, printing what it chooses."""
    for m in models:
        m.predictor.auto.start = "background"
        m.predictor.auto.reselect = reselect
        prefix = f"segment demo: {m.predictor.name}: " if len(models) > 1 else "segment demo: "
        m.predictor.listeners.append(lambda line, prefix=prefix: print(prefix + line, flush=True))


def _backend_line(predictor) -> str:
    """What serves: the fixed backend, or auto's default for now and what happens next."""
    if predictor.backend != "auto":
        chosen = ", ".join(f"{sel.backend} {sel.precision} at {h}x{w}" for (h, w), sel in predictor.selections.items())
        return chosen or predictor.backend
    from segment.sizes import SIZES

    shapes = {name: tuple(SIZES[name]) for name in ("half", "full")}
    saved = predictor.saved_selections()
    if not predictor.auto.reselect and all(s in saved and not saved[s]["stale"] for s in shapes.values()):
        return "auto (" + ", ".join(f"{name}: {saved[s]['backend']} {saved[s]['precision']}"
                                    for name, s in shapes.items()) + ", measured earlier)"
    default = predictor.default_spec(tuple(SIZES["half"]))
    return (f"auto: {default.backend} {default.precision} serves until the candidates, measured in the "
            "background, pick the fastest")


def _load_models(args):
    """The page's models, the default first, and their checkpoint files.

    ``--checkpoint``: that model alone. Otherwise every bundled model present, ``--model``
    (default large) first; an explicitly requested model that is missing is an error naming
    its file, and so is having none at all. Each goes through ``load_predictor``, the same
    loading as ``segment predict``."""
    from segment import bundled
    from segment.bundled import load_predictor
    from serve.app import DemoModel

    bundled.check_choice(args.checkpoint, args.model)
    if args.checkpoint is not None:
        predictor = load_predictor(args.checkpoint, args.backend)
        return [DemoModel.of(predictor)], [Path(args.checkpoint)]
    present = bundled.available()
    if args.model is not None:
        first = bundled.get_model(args.model)
        bundled.checkpoint_for(first.name)  # missing: the error names the file
    elif not present:
        bundled.checkpoint_for(bundled.DEFAULT_MODEL)  # raises: the default's file, what to do
    else:
        first = bundled.MODELS[bundled.DEFAULT_MODEL] if bundled.MODELS[bundled.DEFAULT_MODEL] in present else present[0]
        if first.name != bundled.DEFAULT_MODEL:
            print(f"segment demo: the bundled {bundled.DEFAULT_MODEL} model is missing "
                  f"({bundled.MODELS[bundled.DEFAULT_MODEL].path}); serving {first.name}", flush=True)
    chosen = [first, *(m for m in present if m.name != first.name)]
    models = [DemoModel(key=m.name, label=m.label, note=m.paper_row,
                        predictor=load_predictor(None, args.backend, model=m.name)) for m in chosen]
    return models, [m.path for m in chosen]


def _export_cache(predictor) -> list[Path]:
    """The backends' folder of exported models (derived from the weights): never served either."""
    cache = getattr(predictor, "cache_dir", None)
    return [Path(cache).resolve()] if cache else []
