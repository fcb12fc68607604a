"""The ``segment`` command: one entry point, one subcommand per job.

Subcommands live in the package that owns them (training in ``train``, the demo
in ``serve``, ...). They are imported only when run, so ``segment zoo`` does not
pay for Gradio, and ``segment`` itself never imports a package above it at load
time (docs/design.md, "Layers").
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module with add_arguments(parser) and run(args) -> int, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "zoo": ("segment.commands.zoo", "list the paper's models with parameters and MAdds beside the paper's"),
    "export": ("segment.commands.export", "export a checkpoint or preset to ONNX / OpenVINO"),
    "predict": ("segment.commands.predict", "segment images, folders or globs into PNGs"),
    "backends": ("segment.commands.backends", "what backend auto chose per model and size, when and why; "
                                              "--reselect measures again"),
    "bench": ("segment.commands.bench", "measure CPU latency of models, backends and precisions"),
    "profile": ("segment.commands.profile", "OpenVINO's per-layer time by network part and layer kind, per precision"),
    "report": ("segment.commands.report", "Table 7 for your CPU: mIoU against CPU time, with a plot"),
    "synth": ("data.synth_cli", "write a synthetic Cityscapes-layout dataset"),
    "data": ("data.cli", "check a dataset's layout and files, or recompress it for faster loading"),
    "train": ("train.cli", "train a model (CPU, one GPU, or torchrun for many)"),
    "eval": ("train.eval_cli", "evaluate a checkpoint: per-class IoU, mIoU, pixel accuracy"),
    "export-weights": ("train.export_weights", "shrink a training checkpoint to the weights inference needs"),
    "small-input-stats": ("train.small_input_stats", "give a checkpoint BatchNorm statistics (and optionally a "
                                                     "fine-tune's weights) for small inputs (a photo run near its "
                                                     "own size)"),
    "zoo-add": ("train.zoo_add", "put a trained paper row into the model zoo (fp16 weights, manifest, mIoUs)"),
    "demo": ("serve.cli", "launch the Gradio web demo"),
    "demo-timing": ("serve.latency_cli", "where a running demo's request time goes: browser clicks and API calls"),
}


def _load(name: str):
    module_name = COMMANDS[name][0]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return None  # subcommand not shipped in this build
        raise


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segment",
        description="MobileNetV3 + LR-ASPP street-scene segmentation (Howard et al., 2019).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        # Only the chosen subcommand's module is imported to declare its options.
        if name == only:
            module = _load(name)
            if module is None:
                parser.error(f"'segment {name}' is not available in this installation")
            module.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(chosen if chosen in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(_load(args.command).run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if not getattr(exc, "is_user_error", False):
            raise
        print(f"segment {args.command}: error: {_user_message(exc)}", file=sys.stderr)
        return 2


def _user_message(exc: Exception) -> str:
    """The error's own message. One raised in a DataLoader worker comes back wrapped by torch in
    "Caught X in DataLoader worker process N" and the worker's traceback: keep its last line."""
    text = str(exc)
    if not (text.startswith("Caught ") and "Original Traceback" in text):
        return text
    last = [line for line in text.splitlines() if line.strip()][-1]
    prefix = f"{type(exc).__module__}.{type(exc).__name__}: "
    return last[len(prefix):] if last.startswith(prefix) else last


if __name__ == "__main__":
    sys.exit(main())
