"""Table 7 for your CPU, from ``segment eval --json`` and ``segment bench --json`` results (the library of
``segment report``, whose command is ``segment.commands.report``).

Joins mIoU (evaluation files) and CPU time (benchmark rows) per model into a
markdown table shaped like the paper's Table 7, with the paper's figures
beside ours, and a PNG plot of mIoU against CPU time with the Pareto front
(models no other model beats on both) and the torchvision peer marked.

CPU time per model and size is its fastest request (image in, labels out)
among the backends measured at the chosen thread count (``--threads``,
default 1: the paper timed one core of a Pixel 3) that pass the accuracy
guard (argmax agreement with torch fp32 >= 99.5%; int8 only with a mIoU drop
under 0.5 points).
"""

from __future__ import annotations

import json
from pathlib import Path

from segment.errors import UserError

PEER = "torchvision_lraspp"
BACKBONES = {"mobilenet_v3_large": "V3", "mobilenet_v3_small": "V3-Small", "mobilenet_v2": "V2"}


def read_json_list(path: str | Path) -> list[dict]:
    path = Path(path)
    try:
        rows = json.loads(path.read_text())
    except OSError as exc:
        raise UserError(f"cannot read benchmark file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise UserError(f"{path} is not JSON ({exc}); pass the output of 'segment bench --json'") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "model" in r and "median_ms" in r for r in rows):
        raise UserError(f"{path} is not a 'segment bench --json' list (objects with model, median_ms, ...)")
    return rows


def read_eval(spec: str) -> tuple[str, float]:
    """``MODEL=FILE`` -> (MODEL, mIoU); FILE is ``segment eval --json`` output (its last JSON line counts)."""
    if "=" not in spec:
        raise UserError(f"--eval {spec!r}: use MODEL=FILE, e.g. T7-8=eval_full.json")
    model, path = spec.split("=", 1)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise UserError(f"cannot read evaluation file {path}: {exc.strerror}") from None
    for line in reversed([ln for ln in text.splitlines() if ln.strip()]):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("miou"), (int, float)):
            miou = float(obj["miou"])
            # 'segment eval' may report a fraction or percent; the table is in percent like the paper.
            return model, miou * 100.0 if miou <= 1.0 else miou
    try:  # a whole-file JSON object (pretty-printed)
        obj = json.loads(text)
        if isinstance(obj, dict) and isinstance(obj.get("miou"), (int, float)):
            miou = float(obj["miou"])
            return model, miou * 100.0 if miou <= 1.0 else miou
    except ValueError:
        pass
    raise UserError(f"{path} has no JSON line with a numeric 'miou'; pass the output of 'segment eval --json'")


def passes_guard(row: dict, min_agreement: float) -> bool:
    """A row whose labels may stand for the model: the accuracy guard of ``segment bench`` and ``auto``.

    The labelled set's agreement (``--guard-data``), when measured, outranks the
    one benchmark image's, as it does for ``backend="auto"``.
    """
    from segment.accuracy import guard_passes

    return guard_passes(precision=row.get("precision", ""), agreement=row.get("guard_agreement", row.get("agreement")),
                        miou_drop=row.get("miou_drop"), min_agreement=min_agreement)


def summarize(rows: list[dict], *, threads: int, min_agreement: float = 0.995) -> dict[str, dict]:
    """Per model: paper row, config, params, MAdds, and the fastest guarded request at full / half."""
    models: dict[str, dict] = {}
    for r in rows:
        if r.get("threads") != threads or not passes_guard(r, min_agreement):
            continue
        m = models.setdefault(r["model"], {"model": r["model"], "paper_row": r.get("paper_row"),
                                           "config": r.get("config"), "params": r.get("params"), "peer": r.get("peer", False)})
        if r.get("size") in ("full", "half"):
            key = r["size"]
            ms = r.get("request_median_ms", r["median_ms"])
            if key not in m or ms < m[key]["ms"]:
                m[key] = {"ms": ms, "backend": r.get("backend"), "precision": r.get("precision"),
                          "peer_ratio": r.get("peer_ratio"), "peer_ratio_ov": r.get("peer_ratio_ov")}
            if key == "full":
                m["madds"] = r.get("madds")
    if not models:
        raise UserError(f"no benchmark rows at --threads {threads}; the files hold threads "
                        f"{sorted({r.get('threads') for r in rows})}")
    return models


def _lookup(evals: dict[str, float], m: dict) -> float | None:
    for key in (m["model"], m.get("paper_row")):
        if key and key in evals:
            return evals[key]
    return None


def build_table(models: dict[str, dict], evals_full: dict[str, float], evals_half: dict[str, float],
                *, threads: int) -> str:
    from segment.presets import list_presets

    paper = {p.paper.row: p for p in list_presets()}
    head = ["N", "model", "backbone", "RF2", "head", "F", "OS", "mIoU f", "paper", "mIoU h", "params", "paper",
            "MAdds f", "paper", "CPU f", "paper", "CPU h", "paper", "x peer f", "x peer h", "x OV peer f", "x OV peer h", "backend f / h"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = sorted(models.values(), key=lambda m: (m["peer"], _row_order(m.get("paper_row")), m["model"]))
    for m in order:
        p = paper.get(m.get("paper_row") or "")
        cfg = m.get("config") or (p.config.to_dict() if p else None)
        pf = p.paper if p else None
        full, half = m.get("full"), m.get("half")
        cells = [
            (m.get("paper_row") or "-").replace("T7-", ""),
            m["model"],
            BACKBONES.get(cfg["backbone"], cfg["backbone"]) + ("" if cfg.get("width_mult", 1.0) == 1.0 else f" {cfg['width_mult']}") if cfg else "-",
            ("yes" if cfg.get("rf2") else "-") if cfg else "-",
            ({"lraspp": "LR-ASPP", "raspp": "R-ASPP"}.get(cfg["head"], cfg["head"])) if cfg else "-",
            str(cfg["head_channels"]) if cfg else "-",
            str(cfg["output_stride"]) if cfg else "-",
            _num(_lookup(evals_full, m), "{:.2f}"), _num(pf.miou if pf else None, "{:.2f}"),
            _num(_lookup(evals_half, m), "{:.2f}"),
            _num(m.get("params"), "{:.2f}M", 1e6), _num(pf.params if pf else None, "{:.2f}M", 1e6),
            _num(m.get("madds"), "{:.2f}B", 1e9), _num(pf.madds_full if pf else None, "{:.2f}B", 1e9),
            _ms(full["ms"] if full else None), _ms(pf.cpu_full_ms if pf else None),
            _ms(half["ms"] if half else None), _ms(pf.cpu_half_ms if pf else None),
            _num(full.get("peer_ratio") if full else None, "{:.2f}x"), _num(half.get("peer_ratio") if half else None, "{:.2f}x"),
            _num(full.get("peer_ratio_ov") if full else None, "{:.2f}x"),
            _num(half.get("peer_ratio_ov") if half else None, "{:.2f}x"),
            " / ".join(f"{d['backend']} {d['precision']}" for d in (full, half) if d) or "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Ours: CPU = this machine, {threads} thread(s), batch 1, median of the fastest measured backend that "
                 "passes the accuracy guard, for the whole request (image in, labels out); MAdds at 1024x2048. Paper: Cityscapes val, one large core "
                 "of a Pixel 3, float. 'x peer': torchvision lraspp_mobilenet_v3_large request time / ours, same run, "
                 "in eager PyTorch; 'x OV peer': the same peer through OpenVINO (its faster of fp32 and bf16).")
    return "\n".join(lines)


def _row_order(row: str | None) -> tuple:
    if row and row.startswith("T7-"):
        return (0, int(row[3:]))
    return (1, row or "")


def _num(v, fmt: str, unit: float = 1.0) -> str:
    return "-" if v is None else fmt.format(v / unit)


def _ms(v) -> str:
    if v is None:
        return "-"
    return f"{v / 1000:.2f}s" if v >= 1000 else f"{v:.0f}ms"


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both time (lower) and mIoU (higher), by increasing time."""
    front, best = [], float("-inf")
    for t, m in sorted(points, key=lambda p: (p[0], -p[1])):
        if m > best:
            front.append((t, m))
            best = m
    return front


def plot(models: dict[str, dict], evals: dict[str, float], path: str | Path, *, size: str, threads: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from segment.atomic import write_atomic

    fig, ax = plt.subplots(figsize=(7, 4.5))
    pts = []
    for m in models.values():
        timing, miou = m.get(size), _lookup(evals, m)
        if timing is None:
            continue
        if m["peer"] and m["model"] == PEER:
            ax.axvline(timing["ms"], color="tab:red", linestyle="--", linewidth=1)
            if miou is not None:
                ax.scatter([timing["ms"]], [miou], marker="x", color="tab:red", zorder=3)
            # x in data units, y in axes fraction: the label stays inside whatever the mIoU range is.
            ax.text(timing["ms"], 0.03, " torchvision LR-ASPP (peer)", transform=ax.get_xaxis_transform(),
                    rotation=90, fontsize=8, color="tab:red", ha="right", va="bottom")
            continue
        if miou is None:
            continue
        pts.append((timing["ms"], miou))
        ax.scatter([timing["ms"]], [miou], color="tab:blue", zorder=3)
        ax.annotate(m.get("paper_row") or m["model"], (timing["ms"], miou), fontsize=8, xytext=(4, 3),
                    textcoords="offset points")
    times = [m[size]["ms"] for m in models.values() if m.get(size)]
    if times:
        ax.set_xlim(0, max(times) * 1.12)  # room for the peer's label beside its line
    front = pareto(pts)
    if front:
        ax.plot([p[0] for p in front], [p[1] for p in front], color="tab:blue", drawstyle="steps-post",
                label="Pareto front")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel(f"CPU time per image, {size} size, {threads} thread(s) (ms)")
    ax.set_ylabel("mIoU (%)")
    ax.set_title("mIoU against CPU time")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    write_atomic(path, lambda f: fig.savefig(f, dpi=120, format="png"))
    plt.close(fig)
    return Path(path)
