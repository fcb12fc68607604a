"""``segment report``: Table 7 for your CPU as markdown, and a plot (options and printing; the
table, guard and plot are ``segment.report``)."""

from __future__ import annotations

import argparse

from segment.report import build_table, plot, read_eval, read_json_list, summarize


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--zoo", nargs="*", metavar="ROW",
                        help="measure the trained zoo's rows now (all shipped rows, or those named, e.g. T7-5 T7-8), "
                             "at half and full, 1 and all threads, beside the torchvision peer; mIoU from the zoo's "
                             "manifest (CamVid val, measured when the row was added)")
    parser.add_argument("--backend", action="append", default=[], choices=["torch", "onnxruntime", "openvino"],
                        help="with --zoo: backends to measure (repeatable; default openvino)")
    parser.add_argument("--precision", action="append", default=[], choices=["fp32", "bf16", "mixed", "int8"],
                        help="with --zoo: precisions to measure (repeatable; default fp32, bf16 and mixed: int8 "
                             "needs a labelled guard, 'segment bench --guard-data')")
    parser.add_argument("--runs", type=int, default=10, help="with --zoo: timed runs per configuration (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="with --zoo: untimed runs first (default 2)")
    parser.add_argument("--size", action="append", default=[], choices=["half", "full"],
                        help="with --zoo: sizes to measure (repeatable; default half and full)")
    parser.add_argument("--no-peer-openvino", action="store_true",
                        help="with --zoo: skip the torchvision peer's OpenVINO rows")
    parser.add_argument("--cache-dir", help="with --zoo: where exported models are cached")
    parser.add_argument("--save-bench", metavar="FILE",
                        help="with --zoo: also write the measured rows (a 'segment bench --json' list) to FILE, so the "
                             "table can be rebuilt with --bench FILE")
    parser.add_argument("--bench", action="append", default=[],
                        help="JSON list written by 'segment bench --json' (repeatable)")
    parser.add_argument("--eval", action="append", default=[], metavar="MODEL=FILE",
                        help="mIoU at full size: MODEL (bench 'model' name or paper row, e.g. T7-8) = output of "
                             "'segment eval --json' (repeatable)")
    parser.add_argument("--eval-half", action="append", default=[], metavar="MODEL=FILE",
                        help="the same at half size (512x1024)")
    parser.add_argument("--threads", type=int, action="append", default=[],
                        help="thread count whose times go in a table (repeatable: one table each; default 1, and with "
                             "--zoo 1 and all); the plot uses the first")
    parser.add_argument("--min-agreement", type=float, default=0.995,
                        help="leave out backend rows whose argmax agreement with torch fp32 is lower (default 0.995), "
                             "and int8 rows whose mIoU drop is 0.5 points or more")
    parser.add_argument("--plot-size", choices=["full", "half"], default="full", help="CPU time axis of the plot")
    parser.add_argument("--out", help="markdown file to write (default: print)")
    parser.add_argument("--plot", help="PNG file for mIoU against CPU time")


def run(args: argparse.Namespace) -> int:
    from segment.errors import UserError

    if args.zoo is None and not args.bench:
        raise UserError("segment report needs --zoo (measure the trained zoo now) or --bench FILE "
                        "('segment bench --json' output)")
    rows = [r for path in args.bench for r in read_json_list(path)]
    evals_full = dict(read_eval(s) for s in args.eval)
    evals_half = dict(read_eval(s) for s in args.eval_half)
    if args.zoo is not None:
        zoo_rows, zoo_full, zoo_half = measure_zoo(args)
        rows += zoo_rows
        evals_full, evals_half = {**zoo_full, **evals_full}, {**zoo_half, **evals_half}
    threads = thread_counts(args, rows)
    tables = []
    for t in threads:
        models = summarize(rows, threads=t, min_agreement=args.min_agreement)
        heading = f"### {t} thread{'s' if t > 1 else ''}\n\n" if len(threads) > 1 else ""
        tables.append(heading + build_table(models, evals_full, evals_half, threads=t))
    table = "\n\n".join(tables)
    models = summarize(rows, threads=threads[0], min_agreement=args.min_agreement)
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
        plot(models, evals, args.plot, size=args.plot_size, threads=threads[0])
        print(f"wrote {args.plot}")
    return 0


def thread_counts(args: argparse.Namespace, rows: list[dict]) -> list[int]:
    """The tables' thread counts: as asked; else 1, plus every other count measured when --zoo measured."""
    if args.threads:
        return args.threads
    if args.zoo is None:
        return [1]
    return sorted({r["threads"] for r in rows if "threads" in r} | {1})


def measure_zoo(args: argparse.Namespace) -> tuple[list[dict], dict[str, float], dict[str, float]]:
    """``segment bench`` on the zoo's rows (half and full, 1 and all threads, with the peers), and their
    manifest mIoUs by row at full and half."""
    import json

    from segment.bench import collect
    from segment.commands import bench
    from segment.errors import UserError
    from segment.zoo_weights import read_manifest, resolve_row

    entries = read_manifest()
    names = [n.upper() for n in args.zoo] or list(entries)
    if not names:
        raise UserError("the model zoo has no rows yet (zoo/manifest.json); add one with 'segment zoo-add ROW CKPT'")
    argv = []
    for name in names:
        argv += ["--checkpoint", str(resolve_row(name))]  # verified against the manifest's sha256
    for backend in args.backend or ["openvino"]:
        argv += ["--backend", backend]
    for precision in args.precision or ["fp32", "bf16", "mixed"]:
        argv += ["--precision", precision]
    argv += ["--runs", str(args.runs), "--warmup", str(args.warmup)]
    argv += [a for size in args.size for a in ("--size", size)] + [a for t in args.threads for a in ("--threads", str(t))]
    argv += (["--cache-dir", args.cache_dir] if args.cache_dir else []) + (
        ["--no-peer-openvino"] if args.no_peer_openvino else [])
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    rows = collect(parser.parse_args(argv))
    if args.save_bench:
        from segment.atomic import write_text

        write_text(args.save_bench, json.dumps(rows, indent=1) + "\n")
    full = {entries[n].row: entries[n].miou["full"] for n in names if "full" in entries[n].miou}
    half = {entries[n].row: entries[n].miou["half"] for n in names if "half" in entries[n].miou}
    return rows, full, half
