"""``segment demo``: launch the Gradio web demo (the bundled models by default).

Without ``--checkpoint`` the page offers every bundled model present
(``segment.bundled``: large, small), ``--model`` being the one it opens with
(default large); that one is prepared before the page opens, the others in the
background once it is up. With ``--checkpoint`` it serves that model alone.
"""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from segment.commands.options import add_model_arguments

    add_model_arguments(parser, model_help="the bundled model the page opens with (the others present are "
                                           "offered beside it)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 for everyone)")
    parser.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    parser.add_argument("--backend", choices=("auto", "torch", "onnxruntime", "openvino"), default="auto",
                        help="inference engine; auto = the fastest on this machine whose labels match torch fp32 "
                             "(measured when a resolution is first prepared, then remembered; default: auto)")
    parser.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload in MB (default: 20)")
    parser.add_argument("--max-pixels", type=int, default=None,
                        help="largest image in pixels, checked before decoding (default: 50 million)")
    parser.add_argument("--concurrency", type=int, default=2,
                        help="requests handled at once; the model itself runs one at a time with all cores (default: 2)")
    # Both by default: with --backend auto, preparing a size exports and times the candidate
    # backends (~15 s at full on 2 cores the first time, a few seconds once cached), and a
    # user's first request should not be the one that waits for it.
    parser.add_argument("--warm-up", choices=("half", "full", "both", "none"), default="both",
                        help="resolutions to prepare before serving (default: both; one not prepared is "
                             "prepared by its first request)")


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

    models, checkpoints = _load_models(args)
    predictor = models[0].predictor
    handlers = DemoHandlers(models=models, settings=settings)
    warmed = {"half": ["half"], "full": ["full"], "both": ["half", "full"], "none": []}[args.warm_up]
    for resolution in warmed:
        print(f"segment demo: preparing {models[0].title} at {resolution} resolution (backend {args.backend}) ...",
              flush=True)
        print(f"segment demo: ready at {resolution} in {handlers.warm_up(resolution):.1f} s", flush=True)
    private_temp_dir()
    # SIGTERM (systemd, docker stop, timeout) ends the server like Ctrl+C does, so
    # Gradio closes cleanly and the private temp folder is removed at exit.
    signal.signal(signal.SIGTERM, _interrupt)
    demo = build_app(settings=settings, handlers=handlers)
    # With --backend auto, say what was chosen for each prepared size, not "auto".
    chosen = ", ".join(f"{sel.backend} {sel.precision} at {h}x{w}" for (h, w), sel in predictor.selections.items())
    others = "".join(f"; also {m.title}, prepared in the background" for m in models[1:])
    print(f"segment demo: {predictor.name} on {chosen or predictor.backend}{others}; "
          f"open http://{args.host}:{args.port} (Ctrl+C to stop)", flush=True)
    blocked = {Path(c).resolve().parent for c in checkpoints}
    for m in models:
        blocked.update(_export_cache(m.predictor))
    try:
        launch_app(demo, host=args.host, port=args.port, settings=settings, blocked=sorted(blocked),
                   block_thread=False)
        # The page is up: the other common photo shapes (4:3, 3:4) and the other models are prepared meanwhile.
        if warmed:
            handlers.prepare_in_background(warmed, report=lambda line: print(line, flush=True))
        demo.block_thread()
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port} ({exc}); pick another --port") from None
    except KeyboardInterrupt:
        # A signal that lands while launch() is still starting up (before Gradio's own
        # loop catches it) is the same request to stop: close the server, exit 0.
        demo.close()
        print("segment demo: stopped", flush=True)
    finally:
        handlers.stop_background()
    return 0


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
