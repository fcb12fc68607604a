"""The paper's models with our parameter and MAdds counts beside the paper's (the tables of ``segment zoo``,
whose command is ``segment.commands.zoo``)."""

from __future__ import annotations

import functools
import json

from segment.complexity import DEEPLAB_FULL, DEEPLAB_HALF, FULL, HALF, count_conv_madds, count_madds, count_params
from segment.model import build_model
from segment.presets import ALIASES, Preset, get_preset


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
        # Compared with the paper: its convention (segment.complexity), at DeepLab's
        # Cityscapes sizes (1025x2049, 513x1025).
        "madds_full": count_madds(model, DEEPLAB_FULL),
        "madds_half": count_madds(model, DEEPLAB_HALF),
        # Convolutions and linear layers only, at the same sizes.
        "conv_madds_full": count_conv_madds(model, DEEPLAB_FULL),
        "conv_madds_half": count_conv_madds(model, DEEPLAB_HALF),
        # The paper's convention at exactly 1024x2048 and 512x1024.
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
    header = ["name", "row", "params", "paper", "diff", "MAdds f", "paper", "diff", "conv f",
              "MAdds h", "paper", "diff", "conv h"]
    lines = []
    for r in rows:
        lines.append([
            r["name"], r["paper_row"],
            _fmt(r["params"], 1e6, "M"), _fmt(r["paper_params"], 1e6, "M"), _rel(r["params"], r["paper_params"]),
            _fmt(r["madds_full"], 1e9, "B"), _fmt(r["paper_madds_full"], 1e9, "B"), _rel(r["madds_full"], r["paper_madds_full"]),
            _fmt(r["conv_madds_full"], 1e9, "B"),
            _fmt(r["madds_half"], 1e9, "B"), _fmt(r["paper_madds_half"], 1e9, "B"), _rel(r["madds_half"], r["paper_madds_half"]),
            _fmt(r["conv_madds_half"], 1e9, "B"),
        ])
    out = _columns(header, lines)
    out.append("")
    out.append("MAdds: the paper's convention (convolutions and linear layers, plus one operation per element of")
    out.append("each h-swish, squeeze-excite pool and scale, residual add and the final logit resize); conv: convolutions")
    out.append("and linear layers only. Both at DeepLab's Cityscapes input sizes 1025x2049 (f) and 513x1025 (h);")
    out.append("--json also gives the paper-convention counts at 1024x2048 / 512x1024.")
    return "\n".join(out)


def _columns(header: list[str], lines: list[list]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    out = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip() for row in [header, *lines]]
    out.insert(1, "  ".join("-" * w for w in widths))
    return out


# One preset per backbone: the geometry depends on the backbone and the output stride only.
_BLOCK_PRESETS = ("mnv3-rf2-lraspp-f128", "mnv3small-rf2-lraspp-f128", "mnv2-rf2-lraspp-f128")


def block_rows() -> list[dict]:
    """Per backbone and output stride, every block's (stride, rate, residual) as built."""
    from dataclasses import replace

    rows = []
    for name in _BLOCK_PRESETS:
        config = get_preset(name).config
        for os_ in (16, 32):
            backbone = build_model(replace(config, output_stride=os_)).backbone
            for i, g in enumerate(backbone.geometry()):
                rows.append({"backbone": config.backbone, "output_stride": os_, "block": i,
                             "stride": g.stride, "rate": g.rate, "residual": g.residual})
    return rows


def format_blocks(rows: list[dict]) -> str:
    header = ["backbone", "OS", "block", "stride", "rate", "residual"]
    lines = [[r["backbone"], r["output_stride"], r["block"], r["stride"], r["rate"], "yes" if r["residual"] else "-"]
             for r in rows]
    return "\n".join(_columns(header, lines))
