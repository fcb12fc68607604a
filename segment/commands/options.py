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


def add_int8_float_argument(parser: argparse.ArgumentParser) -> None:
    """``--int8-float``: which layer groups OpenVINO int8 (NNCF) keeps in float (bench, export, profile)."""
    parser.add_argument("--int8-float", metavar="GROUPS",
                        help="OpenVINO int8 (NNCF): layer groups kept in float, comma-separated, from stem, block0, "
                             "gate, classifiers ('' for none; default stem,block0,gate,classifiers)")


def int8_settings_arg(args: argparse.Namespace):
    """``--int8-float`` as ``Int8Settings`` (None when not given: the defaults); a bad group is a UserError."""
    from segment.errors import UserError
    from segment.quantize_nncf import settings_from_groups

    try:
        return settings_from_groups(args.int8_float)
    except ValueError as exc:
        raise UserError(f"--int8-float: {exc}") from None
