"""Options shared by several subcommands (``segment predict``, ``segment demo``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_model_arguments(parser: argparse.ArgumentParser, model_help: str = "bundled model") -> None:
    """``--checkpoint`` and ``--model``: which weights (shared by ``segment predict`` and ``segment demo``)."""
    from segment.bundled import DEFAULT_MODEL, MODELS

    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="checkpoint written by 'segment train', or a trained paper row of the model zoo "
                             "(e.g. T7-5: see zoo/manifest.json) (default: the bundled model named by --model)")
    parser.add_argument("--model", choices=list(MODELS), default=None,
                        help=f"{model_help}: " + "; ".join(f"{m.name} = {m.label} ({m.paper_row})"
                                                            for m in MODELS.values())
                             + f" (default: {DEFAULT_MODEL}; not together with --checkpoint)")
