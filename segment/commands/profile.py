"""``segment profile``: OpenVINO's per-layer time for one model at one size, side by side for
several precisions, summed by network part and by kind of layer (``segment.profile``)."""

from __future__ import annotations

import argparse
import json

from segment.commands.options import add_int8_float_argument, add_model_arguments, int8_settings_arg


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--size", default="full", help="half, full or HxW (default full); a photo keeps its "
                                                       "aspect ratio in its shape bucket, as 'segment predict' runs it")
    parser.add_argument("--precision", action="append", default=[], choices=["fp32", "bf16", "mixed", "int8"],
                        help="OpenVINO precision (repeatable; default mixed and int8)")
    parser.add_argument("--threads", type=int, default=1, help="inference threads (default 1: the clearest profile)")
    parser.add_argument("--runs", type=int, default=5, help="profiled runs; each layer's median is kept (default 5)")
    parser.add_argument("--image", help="RGB photo to run (default: a synthetic street scene)")
    parser.add_argument("--calib-data", help="folder of dataset images to calibrate int8 (default: the bundled street photos)")
    add_int8_float_argument(parser)
    parser.add_argument("--cache-dir", help="where exported models are cached (default ~/.cache/mnv3-lraspp)")
    parser.add_argument("--json", action="store_true", help="print every layer as JSON instead of the tables")


def run(args: argparse.Namespace) -> int:
    from segment.backends import BackendSpec
    from segment.bench import bench_input
    from segment.bundled import resolve_checkpoint
    from segment.errors import UserError
    from segment.predict import Predictor
    from segment.profile import profile_layers, summarize
    from segment.sizes import parse_size

    if args.runs < 1 or args.threads < 1:
        raise UserError("--runs and --threads must be >= 1")
    size = parse_size(args.size, native=False, minimum=32, error=f"--size {args.size!r}: use half, full or HxW")
    settings = int8_settings_arg(args)
    predictor = Predictor.from_checkpoint(resolve_checkpoint(args.checkpoint, args.model), cache_dir=args.cache_dir,
                                          calib_data=args.calib_data, int8_settings=settings)
    image, plan = bench_input(size, args.image)
    x = predictor.prepare(image, plan)
    results = {}
    for precision in args.precision or ["mixed", "int8"]:
        spec = BackendSpec(backend="openvino", precision=precision, threads=args.threads, perf_count=True)
        results[precision] = profile_layers(predictor.build(spec, plan.run_hw), x, runs=args.runs)
    if args.json:
        print(json.dumps({"size": list(plan.run_hw), "threads": args.threads, "layers": results}, indent=1))
        return 0
    h, w = plan.run_hw
    print(f"OpenVINO per-layer time at {h}x{w}, {args.threads} thread(s), median of {args.runs} runs (ms)")
    for by in ("part", "kind"):
        print()
        print(_table(by, {p: summarize(layers, by) for p, layers in results.items()}))
    return 0


def _table(by: str, sums: dict[str, dict[str, float]]) -> str:
    """One row per part (or kind), one column per precision, a total row last."""
    precisions = list(sums)
    keys = list(dict.fromkeys(k for s in sums.values() for k in s))
    width = max(len(by), *(len(k) for k in keys))
    lines = [f"{by:<{width}}" + "".join(f"{p:>10}" for p in precisions)]
    for key in keys:
        lines.append(f"{key:<{width}}" + "".join(f"{sums[p].get(key, 0.0):>10.2f}" for p in precisions))
    lines.append(f"{'total':<{width}}" + "".join(f"{sum(sums[p].values()):>10.2f}" for p in precisions))
    return "\n".join(lines)
