"""``segment zoo``: the paper's models with our parameter and MAdds counts beside the paper's."""

from __future__ import annotations

import argparse
import functools
import json

from segment.complexity import DEEPLAB_FULL, DEEPLAB_HALF, FULL, HALF, count_madds, count_params
from segment.model import build_model
from segment.presets import ALIASES, Preset, get_preset, list_presets


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of a table")


@functools.lru_cache(maxsize=None)
def _zoo_row_cached(name: str) -> str:
    return json.dumps(_zoo_row(get_preset(name)))


def zoo_row(preset: Preset) -> dict:
    """The counts for one preset (cached: counting MAdds at 1025x2049 takes a moment)."""
    return json.loads(_zoo_row_cached(preset.name))


def _zoo_row(preset: Preset) -> dict:
    model = build_model(preset.config)
    paper = preset.paper
    return {
        "name": preset.name,
        "aliases": [a for a, target in ALIASES.items() if target == preset.name],
        "paper_row": paper.row,
        "description": preset.description,
        "config": preset.config.to_dict(),
        "params": count_params(model),
        # Compared with the paper: counted at DeepLab's Cityscapes sizes (1025x2049, 513x1025).
        "madds_full": count_madds(model, DEEPLAB_FULL),
        "madds_half": count_madds(model, DEEPLAB_HALF),
        # The same model at exactly 1024x2048 and 512x1024.
        "madds_full_1024x2048": count_madds(model, FULL),
        "madds_half_512x1024": count_madds(model, HALF),
        "paper_params": paper.params,
        "paper_madds_full": paper.madds_full,
        "paper_madds_half": paper.madds_half,
        "paper_miou": paper.miou,
        "paper_cpu_full_ms": paper.cpu_full_ms,
        "paper_cpu_half_ms": paper.cpu_half_ms,
    }


def _rel(ours: float, paper: float | None) -> str:
    return "" if paper is None else f"{100 * (ours / paper - 1):+.1f}%"


def _fmt(value: float | None, unit: float, suffix: str) -> str:
    return "-" if value is None else f"{value / unit:.2f}{suffix}"


def format_table(rows: list[dict]) -> str:
    header = ["name", "row", "params", "paper", "diff", "MAdds f", "paper", "diff", "MAdds h", "paper", "diff"]
    lines = []
    for r in rows:
        lines.append([
            r["name"], r["paper_row"],
            _fmt(r["params"], 1e6, "M"), _fmt(r["paper_params"], 1e6, "M"), _rel(r["params"], r["paper_params"]),
            _fmt(r["madds_full"], 1e9, "B"), _fmt(r["paper_madds_full"], 1e9, "B"), _rel(r["madds_full"], r["paper_madds_full"]),
            _fmt(r["madds_half"], 1e9, "B"), _fmt(r["paper_madds_half"], 1e9, "B"), _rel(r["madds_half"], r["paper_madds_half"]),
        ])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    out = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip() for row in [header, *lines]]
    out.insert(1, "  ".join("-" * w for w in widths))
    out.append("")
    out.append("MAdds: multiply-adds of convolutions and linear layers, counted once each, at DeepLab's")
    out.append("Cityscapes input sizes 1025x2049 (f) and 513x1025 (h); --json also gives them at 1024x2048 / 512x1024.")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    rows = [zoo_row(p) for p in list_presets()]
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0
