"""``segment report``: Table 7 for your CPU as markdown, and a plot (options and printing; the
table, guard and plot are ``segment.report``)."""

from __future__ import annotations

import argparse

from segment.report import build_table, plot, read_eval, read_json_list, summarize


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bench", action="append", default=[], required=True,
                        help="JSON list written by 'segment bench --json' (repeatable)")
    parser.add_argument("--eval", action="append", default=[], metavar="MODEL=FILE",
                        help="mIoU at full size: MODEL (bench 'model' name or paper row, e.g. T7-8) = output of "
                             "'segment eval --json' (repeatable)")
    parser.add_argument("--eval-half", action="append", default=[], metavar="MODEL=FILE",
                        help="the same at half size (512x1024)")
    parser.add_argument("--threads", type=int, default=1, help="thread count whose times go in the table (default 1)")
    parser.add_argument("--min-agreement", type=float, default=0.995,
                        help="leave out backend rows whose argmax agreement with torch fp32 is lower (default 0.995), "
                             "and int8 rows whose mIoU drop is 0.5 points or more")
    parser.add_argument("--plot-size", choices=["full", "half"], default="full", help="CPU time axis of the plot")
    parser.add_argument("--out", help="markdown file to write (default: print)")
    parser.add_argument("--plot", help="PNG file for mIoU against CPU time")


def run(args: argparse.Namespace) -> int:
    rows = [r for path in args.bench for r in read_json_list(path)]
    models = summarize(rows, threads=args.threads, min_agreement=args.min_agreement)
    evals_full = dict(read_eval(s) for s in args.eval)
    evals_half = dict(read_eval(s) for s in args.eval_half)
    table = build_table(models, evals_full, evals_half, threads=args.threads)
    if args.out:
        from segment.atomic import write_text

        write_text(args.out, table + "\n")
        print(f"wrote {args.out}")
    else:
        print(table)
    if args.plot:
        evals = evals_full if args.plot_size == "full" else evals_half
        if not evals:
            evals = evals_half or evals_full
        plot(models, evals, args.plot, size=args.plot_size, threads=args.threads)
        print(f"wrote {args.plot}")
    return 0
