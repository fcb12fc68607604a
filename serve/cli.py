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
    parser.add_argument("--backend", choices=("auto", "torch", "onnxruntime", "openvino"), default=None,
                        help="inference engine, if this build has several (default: the predictor's own)")
    parser.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload in MB (default: 20)")
    parser.add_argument("--max-pixels", type=int, default=None,
                        help="largest image in pixels, checked before decoding (default: 50 million)")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="requests the model runs at once (default: one per 4 cores, 1..4)")


def run(args: argparse.Namespace) -> int:
    from segment.errors import UserError

    if args.max_upload_mb <= 0:
        raise UserError("--max-upload-mb must be positive")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import torch

    from segment.predict_cli import load_predictor
    from serve.app import DemoSettings, build_app, launch_app, private_temp_dir

    settings = DemoSettings(max_upload_mb=args.max_upload_mb)
    if args.max_pixels is not None:
        settings.max_pixels = args.max_pixels
    if args.concurrency is not None:
        if args.concurrency < 1:
            raise UserError("--concurrency must be at least 1")
        settings.concurrency = args.concurrency
    # Each concurrent request gets its share of the cores instead of all of them.
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // settings.concurrency))

    predictor = load_predictor(args.checkpoint, args.backend)
    checkpoint = args.checkpoint
    if checkpoint is None:
        from segment.bundled import default_checkpoint

        checkpoint = default_checkpoint()
    private_temp_dir()
    # SIGTERM (systemd, docker stop, timeout) ends the server like Ctrl+C does, so
    # Gradio closes cleanly and the private temp folder is removed at exit.
    signal.signal(signal.SIGTERM, _interrupt)
    demo = build_app(predictor=predictor, settings=settings)
    print(f"segment demo: {predictor.name} on {predictor.backend}; open http://{args.host}:{args.port} "
          "(Ctrl+C to stop)", flush=True)
    try:
        launch_app(demo, host=args.host, port=args.port, settings=settings,
                   blocked=[Path(checkpoint).resolve().parent])
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port} ({exc}); pick another --port") from None
    return 0
