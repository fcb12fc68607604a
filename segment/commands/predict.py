"""``segment predict``: segment files, folders or globs into PNGs (the command; the work is
``segment.predict.Predictor`` and ``segment.images``).

Formats:
- ``color``: the class colours (``<stem>_color.png``);
- ``overlay``: the colours blended over the photo (``<stem>_overlay.png``);
- ``trainid``: one channel, trainIds 0..18 (``<stem>_trainIds.png``);
- ``labelid``: one channel, Cityscapes labelIds: the benchmark submission
  format. The file keeps the input's name (``X_leftImg8bit.png`` ->
  ``X_leftImg8bit.png``): the official evaluator (cityscapesscripts'
  ``evalPixelLevelSemanticLabeling``) pairs a prediction with its ground truth
  by the pattern ``{city}_{sequence}_{frame}*.png`` anywhere under the results
  folder, so keep other PNGs out of that folder.

Folders keep their layout under ``--out`` (``val/frankfurt/...``), so
same-named files in different cities cannot collide. A file that cannot be read
is reported and skipped; the exit status is 1 at the end if any failed. Every
PNG is written atomically, so an interrupted run leaves no half-written file.
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from segment.bundled import load_predictor
from segment.commands.options import add_model_arguments

FORMATS = ("color", "overlay", "trainid", "labelid")
SUFFIX = {"color": "_color", "overlay": "_overlay", "trainid": "_trainIds", "labelid": ""}
BACKENDS = ("auto", "torch", "onnxruntime", "openvino")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from segment.images import DEFAULT_MAX_PIXELS

    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files, folders (searched recursively) or glob patterns such as 'photos/**/*.jpg'")
    parser.add_argument("--out", required=True, type=Path, help="folder for the PNGs (created if missing)")
    add_model_arguments(parser)
    parser.add_argument("--size", default="half",
                        help="model input: half or full (each image fitted inside the paper's 512x1024 / 1024x2048, "
                             "turned for portrait images, keeping its aspect ratio in one of a few shape buckets; "
                             "2:1 images run at exactly 512x1024 / 1024x2048), native (the image's own size) or HxW "
                             "(exactly that); labels always come back at the image's size (default: half)")
    parser.add_argument("--format", choices=FORMATS, default="color", dest="fmt",
                        help="what to write (default: color); labelid = Cityscapes submission format")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="inference engine; auto = the fastest on this machine whose labels match torch fp32, "
                             "measured once per model and resolution by the first run long enough to be worth it; "
                             "shorter runs use a default chosen from the shipped accuracy records "
                             "(default: auto, or torch with --size native, where every image size would be "
                             "measured again)")
    parser.add_argument("--reselect", action="store_true",
                        help="with --backend auto: measure the candidates again instead of reusing the remembered "
                             "choice, and remember the new one (see 'segment backends')")
    parser.add_argument("--opacity", type=float, default=0.5, help="overlay only: weight of the colours (0..1)")
    parser.add_argument("--skip-existing", action="store_true",
                        help="leave inputs whose output already exists (resume an interrupted run)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help=f"refuse images larger than this many pixels (default: {DEFAULT_MAX_PIXELS:,})")


@dataclass
class Job:
    source: Path  # the input image
    output: Path  # the PNG to write


@dataclass
class Failure:
    source: str
    reason: str


def is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def collect_jobs(inputs: list[str], out: Path, fmt: str) -> tuple[list[Job], list[Failure]]:
    """Expand files, folders and globs into (input, output) pairs; problems become failures."""
    from segment.images import IMAGE_SUFFIXES

    def output_for(path: Path, relative: Path) -> Path:
        return out / relative.parent / f"{relative.stem}{SUFFIX[fmt]}.png"

    jobs: list[Job] = []
    failures: list[Failure] = []
    claimed: dict[Path, Path] = {}
    out_root = out.resolve()

    def add(path: Path, relative: Path) -> None:
        if path.resolve().is_relative_to(out_root):
            return  # our own earlier outputs (--out inside an input folder) are not inputs
        target = output_for(path, relative)
        key = target.resolve()
        if key in claimed:
            if claimed[key] != path.resolve():
                failures.append(Failure(str(path), f"its output {target} is already the output of {claimed[key]}; "
                                                   "segment them into separate --out folders"))
            return  # the same file named twice is segmented once
        claimed[key] = path.resolve()
        jobs.append(Job(source=path, output=target))

    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                failures.append(Failure(item, f"folder has no images ({', '.join(IMAGE_SUFFIXES)})"))
            for p in found:
                add(p, p.relative_to(path))
        elif path.is_file():
            add(path, Path(path.name))
        elif is_glob(item):
            found = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not found:
                failures.append(Failure(item, "pattern matched no files"))
            for p in found:
                add(p, Path(p.name))
        else:
            failures.append(Failure(item, "no such file or folder"))
    return jobs, failures


def _ran_at(prediction) -> str:
    """'512x704 (half, 4:3 bucket)': the model input of one prediction, without its per-image padding,
    and whether it ran with the checkpoint's small-input state (segment.small_inputs)."""
    h, w = prediction.input_size
    if prediction.bucket:
        shape = f"{h}x{w} ({prediction.size}, {prediction.bucket} bucket)"
    else:
        shape = f"{h}x{w}" + (" (native)" if prediction.size == "native" else "")
    return shape + (f" with {prediction.small_input}" if prediction.small_input else "")


def _skip_measurement_if_run_is_short(predictor, prediction, *, image_s: float, images_left: int) -> str | None:
    """After the first image: skip auto's measurement when the run would end sooner without it.

    The measurement builds every candidate, each about as long as the default took to build for
    the first image (the ``other`` part of its time), and a faster backend only pays that back
    over many images: where the images left would take less time on the default than those
    builds, the rest of the run stays on the default. Nothing is remembered, so a later, longer
    run measures. Returns why it was skipped, or None if it was not.
    """
    from segment.backends import candidate_specs

    if images_left == 0:  # no second image, no measurement: nothing to skip or say
        return None
    build_s = prediction.stages_ms.get("other", 0.0) / 1e3
    cost_s = len(candidate_specs(threads=predictor.threads)) * build_s
    rest_s = images_left * max(image_s - build_s, 0.0)
    if rest_s >= cost_s or not predictor.skip_pending_selections():
        return None
    return (f"the {images_left} image(s) left would take about {rest_s:.1f} s on the default, "
            f"measuring about {cost_s:.0f} s")


def render(fmt: str, image, labels, palette, opacity: float):
    """The array to write for ``fmt``: colours, overlay, trainIds or labelIds."""
    from segment.images import blend, colorize

    if fmt == "color":
        return colorize(labels, palette)
    if fmt == "overlay":
        return blend(image, colorize(labels, palette), opacity)
    if fmt == "trainid":
        return labels
    from data.labels import trainid_to_labelid_lut  # the Cityscapes table (lazy: segment never imports data at load)

    return trainid_to_labelid_lut()[labels]


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from segment.bundled import check_choice
    from segment.errors import UserError
    from segment.images import ImageError, read_photo, write_png
    from segment.sizes import parse_size, plan_run

    check_choice(args.checkpoint, args.model)
    size = parse_size(args.size, error=f"--size {args.size!r}: use half, full, native or HxW such as 768x1536")
    if not 0.0 <= args.opacity <= 1.0:
        raise UserError(f"--opacity {args.opacity}: must be between 0 and 1")
    jobs, failures = collect_jobs(args.inputs, args.out, args.fmt)
    if not jobs:
        for f in failures:
            print(f"segment predict: {f.source}: {f.reason}", file=sys.stderr)
        raise UserError("no images to segment; pass image files, folders or glob patterns")
    backend = args.backend or ("torch" if size == "native" else "auto")
    if args.reselect and backend != "auto":
        raise UserError(f"--reselect measures auto's candidates; it needs --backend auto, not {backend}")
    predictor = load_predictor(args.checkpoint, backend, model=args.model)
    # With nothing remembered, the first image runs on the default backend and auto measures
    # before the second, if the rest of the run is long enough to be worth it (a single photo or
    # a handful never pay for a selection: _skip_measurement_if_run_is_short).
    # Not in a background thread: on a machine of a few cores the measurement and the images
    # would share the cores, slowing both and skewing the figures that pick the backend.
    measure_after_first = backend == "auto" and hasattr(predictor, "auto")
    if measure_after_first:
        predictor.auto.start = "after_first"
        predictor.auto.reselect = args.reselect
    if args.fmt == "labelid" and len(predictor.classes) != 19:
        raise UserError(f"--format labelid needs a model with the 19 Cityscapes train classes; "
                        f"{predictor.name} has {len(predictor.classes)}: use --format trainid")

    # Labels alone need no more of a photo than the model's input: a big JPEG is then decoded at
    # 1/2, 1/4 or 1/8 scale (a 4000x3000 photo at half: 1000x750, read 6-9x faster than whole).
    # An overlay is drawn on the photo's own pixels, and "native" runs on them.
    needed_side = None
    if args.fmt != "overlay" and size != "native":
        def needed_side(hw):
            return max(plan_run(hw, size).valid_hw)

    written = skipped = 0
    shapes: Counter[str] = Counter()  # the sizes the model ran at, for the summary
    engines: Counter[str] = Counter()  # the backends that ran them (auto may change after the first)
    skipped_measurement = None  # the estimate that made auto skip its measurement in this run
    bar = tqdm(jobs, unit="img", desc="segment predict", file=sys.stderr, dynamic_ncols=True)
    for index, job in enumerate(bar):
        started = time.perf_counter()
        if args.skip_existing and job.output.is_file():
            skipped += 1
            continue
        try:
            photo = read_photo(job.source, max_pixels=args.max_pixels, needed_side=needed_side)
        except ImageError as exc:
            failures.append(Failure(str(job.source), str(exc).removeprefix(f"{job.source}: ")))
            bar.write(f"skipped {job.source}: {failures[-1].reason}", file=sys.stderr)
            continue
        try:
            prediction = predictor.predict(photo.pixels, size=size, output_hw=photo.original_hw)
            labels = prediction.labels
        except Exception as exc:  # e.g. an image too small for the network at --size native
            failures.append(Failure(str(job.source), f"segmentation failed ({type(exc).__name__}: {exc})"))
            bar.write(f"failed {job.source}: {failures[-1].reason}", file=sys.stderr)
            continue
        try:
            write_png(job.output, render(args.fmt, photo.pixels, labels, predictor.palette, args.opacity))
        except OSError as exc:  # disk full, permission: report, keep going with the rest
            failures.append(Failure(str(job.source), f"cannot write {job.output}: {exc.strerror or exc}"))
            bar.write(f"failed {job.source}: {failures[-1].reason}", file=sys.stderr)
            continue
        written += 1
        if measure_after_first and written == 1 and not args.reselect:
            skipped_measurement = _skip_measurement_if_run_is_short(
                predictor, prediction, image_s=time.perf_counter() - started, images_left=len(jobs) - index - 1)
        shapes[_ran_at(prediction)] += 1
        engines[f"{prediction.backend} {prediction.precision}"] += 1
    bar.close()

    print(f"segment predict: wrote {written} PNG(s) to {args.out}"
          + (f", skipped {skipped} existing" if skipped else ""), file=sys.stderr)
    if shapes:
        print("segment predict: the model ran at " + ", ".join(
            f"{shape} for {n} image{'s' if n > 1 else ''}" for shape, n in shapes.most_common(6))
            + (f" and {len(shapes) - 6} other sizes" if len(shapes) > 6 else ""), file=sys.stderr)
    if engines:
        print("segment predict: backend " + ", ".join(
            f"{name} for {n} image{'s' if n > 1 else ''}" for name, n in engines.most_common()), file=sys.stderr)
    if skipped_measurement:
        from segment.bundled import DEFAULT_MODEL

        which = f"--checkpoint {args.checkpoint}" if args.checkpoint else f"--model {args.model or DEFAULT_MODEL}"
        print(f"segment predict: auto did not measure its candidates: {skipped_measurement}; a longer run, "
              f"or 'segment backends {which} --reselect {args.size}', measures them", file=sys.stderr)
    if failures:
        print(f"segment predict: {len(failures)} input(s) failed:", file=sys.stderr)
        for f in failures:
            print(f"  {f.source}: {f.reason}", file=sys.stderr)
        return 1
    return 0
