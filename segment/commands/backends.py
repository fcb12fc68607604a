"""``segment backends``: what ``backend="auto"`` chose for each model and input size, when and why,
with every candidate's figures; ``--reselect`` measures again now and rewrites the choice.

The choices are the ``auto-*.json`` files beside the exports (``segment.predict``): one per
model weights, input shape, thread count and engine versions, so this lists the ones the
given thread count (default: all cores, as ``segment predict`` and the demo use) would reuse.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path



def add_arguments(parser: argparse.ArgumentParser) -> None:
    from segment.bundled import MODELS

    # Not the shared --model/--checkpoint options: here leaving both out means every model.
    parser.add_argument("--checkpoint", type=Path, default=None, help="a checkpoint written by 'segment train'")
    parser.add_argument("--model", choices=list(MODELS), default=None,
                        help="one bundled model (default: every bundled model present, unless --checkpoint)")
    parser.add_argument("--threads", type=int, default=None,
                        help="the thread count whose choices to show (default: all cores, what predict and demo use)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="the export cache (default: $MNV3_LRASPP_CACHE or ~/.cache/mnv3-lraspp)")
    parser.add_argument("--reselect", nargs="*", metavar="SIZE", default=None,
                        help="measure the candidates again now and rewrite the choice: at the given sizes "
                             "(half, full or HxW), or with no size at every size remembered (half and full "
                             "when none is)")
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of text")


def run(args: argparse.Namespace) -> int:
    rows = []
    for predictor in _predictors(args):
        if args.reselect is not None:
            for size in _sizes(args.reselect, predictor):
                print(f"segment backends: measuring {predictor.name} at {size[0]}x{size[1]} ...", file=sys.stderr,
                      flush=True)
                predictor.reselect(size)
        rows.extend(_rows(predictor))
        if not args.json:
            print(_format(predictor, rows=[r for r in rows if r["model"] == predictor.name]))
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


def _predictors(args):
    """One auto Predictor per model asked for (nothing is built until a size is measured)."""
    from segment import bundled
    from segment.predict import Predictor

    bundled.check_choice(args.checkpoint, args.model)
    if args.checkpoint is not None or args.model is not None:
        paths = [bundled.resolve_checkpoint(args.checkpoint, args.model)]
    else:
        paths = [m.path for m in bundled.available()] or [bundled.checkpoint_for(bundled.DEFAULT_MODEL)]
    return [Predictor.from_checkpoint(path, backend="auto", threads=args.threads, cache_dir=args.cache_dir)
            for path in paths]


def _sizes(given: list[str], predictor) -> list[tuple[int, int]]:
    """The shapes to measure again: each given size's measured shape, or every remembered one."""
    from segment.sizes import SIZES, parse_size

    if not given:
        remembered = list(predictor.saved_selections())
        return remembered or [tuple(SIZES["half"]), tuple(SIZES["full"])]
    sizes = []
    for text in given:
        size = parse_size(text, native=False, error=f"--reselect {text!r}: use half, full or HxW such as 768x1536")
        sizes.append(predictor.primary_of(SIZES[size] if isinstance(size, str) else size))
    return list(dict.fromkeys(sizes))


def _rows(predictor) -> list[dict]:
    from segment.sizes import budget_of

    return [{"model": predictor.name, "key": predictor.key, "threads": predictor.threads,
             "size": list(size), "budget": budget_of(size), **saved}
            for size, saved in predictor.saved_selections().items()]


def _format(predictor, *, rows: list[dict]) -> str:
    head = (f"{predictor.name} (weights {predictor.key}, {predictor.threads} threads, "
            f"cache {predictor.cache_dir})")
    if not rows:
        return (head + "\n  no auto choice remembered at these threads and engine versions: the first use "
                "measures (segment backends --reselect measures now)\n")
    return "\n".join([head, *(_format_size(row) for row in rows)]) + "\n"


def _format_size(row: dict) -> str:
    h, w = row["size"]
    budget = f" ({row['budget']})" if row.get("budget") else ""
    rounds = f", {row['rounds']} interleaved rounds" if row.get("rounds") else ""
    stale = " [guard records changed since: the next use measures again]" if row.get("stale") else ""
    lines = [f"  {h}x{w}{budget}: {row['backend']} {row['precision']} - {row.get('reason', 'first measurement')}"
             f", {row.get('chosen_utc') or 'time not recorded'}{rounds}{stale}"]
    for c in row.get("candidates", []):
        lines.append("      " + _format_candidate(c))
    for event in row.get("history", [])[:-1][-5:]:
        lines.append("    earlier: " + _format_event(event))
    if row.get("history") and row["history"][-1].get("why"):
        lines.append("    why: " + row["history"][-1]["why"])
    return "\n".join(lines)


def _format_candidate(c: dict) -> str:
    name = f"{c['backend']} {c.get('requested_precision', c['precision'])}"
    if c.get("skipped"):
        return f"{name:<18} skipped: {c['skipped'][:100]}"
    figure = f"{c['request_ms']:8.1f} ms" if "request_ms" in c else "       - ms"
    spread = c.get("spread_ms")
    spread = f" [{spread[0]:.1f}-{spread[1]:.1f}]" if spread else ""
    agreement = f"  agreement {c['agreement']:.4f}" if "agreement" in c else ""
    return f"{name:<18}{figure}{spread}{agreement}{'  <- chosen' if c.get('chosen') else ''}"


def _format_event(event: dict) -> str:
    moved = f"{event['from']} -> {event['to']}" if event.get("from") else event.get("to", "?")
    return f"{event.get('utc', '?')} {event.get('reason', '?')}: {moved}"
