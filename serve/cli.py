"""``segment demo``: launch the Gradio web demo (the bundled model by default)."""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint written by 'segment train' (default: the bundled demo model)")
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
    from segment.predict_cli import load_predictor
    from serve.app import DemoHandlers, DemoSettings, build_app, launch_app, private_temp_dir

    settings = DemoSettings(max_upload_mb=args.max_upload_mb)
    if args.max_pixels is not None:
        settings.max_pixels = args.max_pixels
    if args.concurrency < 1:
        raise UserError("--concurrency must be at least 1")
    settings.concurrency = args.concurrency

    predictor = load_predictor(args.checkpoint, args.backend)
    checkpoint = args.checkpoint
    if checkpoint is None:
        from segment.bundled import default_checkpoint

        checkpoint = default_checkpoint()
    handlers = DemoHandlers(predictor=predictor, settings=settings)
    warmed = {"half": ["half"], "full": ["full"], "both": ["half", "full"], "none": []}[args.warm_up]
    for resolution in warmed:
        print(f"segment demo: preparing the model at {resolution} resolution (backend {args.backend}) ...", flush=True)
        print(f"segment demo: ready at {resolution} in {handlers.warm_up(resolution):.1f} s", flush=True)
    private_temp_dir()
    # SIGTERM (systemd, docker stop, timeout) ends the server like Ctrl+C does, so
    # Gradio closes cleanly and the private temp folder is removed at exit.
    signal.signal(signal.SIGTERM, _interrupt)
    demo = build_app(predictor=predictor, settings=settings, handlers=handlers)
    # With --backend auto, say what was chosen for each prepared size, not "auto".
    chosen = ", ".join(f"{sel.backend} {sel.precision} at {h}x{w}" for (h, w), sel in predictor.selections.items())
    print(f"segment demo: {predictor.name} on {chosen or predictor.backend}; open http://{args.host}:{args.port} "
          "(Ctrl+C to stop)", flush=True)
    try:
        launch_app(demo, host=args.host, port=args.port, settings=settings,
                   blocked=[Path(checkpoint).resolve().parent, *_export_cache(predictor)], block_thread=False)
        # The page is up: the other common photo shapes (4:3, 3:4) are prepared meanwhile.
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


def _export_cache(predictor) -> list[Path]:
    """The backends' folder of exported models (derived from the weights): never served either."""
    cache = getattr(predictor, "cache_dir", None)
    return [Path(cache).resolve()] if cache else []
