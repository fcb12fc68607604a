"""``segment predict``: inputs, formats, the Cityscapes submission format, failures and resuming."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from data.labels import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, labelid_to_trainid_lut, trainid_to_labelid_lut
from segment.commands import predict as predict_cli
from segment.checkpoint import make_checkpoint, save_checkpoint
from segment.cli import main
from segment.model import build_model
from segment.predict import Prediction, Predictor
from segment.presets import get_preset


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    config = get_preset("small").config
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "small.pt"
    save_checkpoint(path, make_checkpoint(model=build_model(config), config=config, classes=CITYSCAPES_CLASSES,
                                          palette=CITYSCAPES_PALETTE, mean=[0.485, 0.456, 0.406],
                                          std=[0.229, 0.224, 0.225]))
    return path


@pytest.fixture(scope="module")
def cityscapes(tmp_path_factory) -> Path:
    from data.synthetic import write_synthetic_cityscapes

    return write_synthetic_cityscapes(out=tmp_path_factory.mktemp("cs"), n=2, size=(64, 128), seed=3, splits=("val",))


def photos(folder: Path, names: list[str], size=(48, 80)) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def predict(*args) -> int:
    """``segment predict`` in-process, on the torch backend unless told (auto would export and time backends)."""
    args = list(map(str, args))
    return main(["predict", *args, *([] if "--backend" in args else ["--backend", "torch"])])


@pytest.mark.parametrize("fmt,suffix,channels", [("color", "_color", 3), ("overlay", "_overlay", 3),
                                                 ("trainid", "_trainIds", 1), ("labelid", "", 1)])
def test_formats(tmp_path, checkpoint, fmt, suffix, channels):
    (src,) = photos(tmp_path / "in", ["street.jpg"])
    assert predict("--checkpoint", checkpoint, src, "--out", tmp_path / "out", "--format", fmt, "--size", "64x128") == 0
    out = np.asarray(Image.open(tmp_path / "out" / f"street{suffix}.png"))
    assert out.shape[:2] == (48, 80) and (out.ndim == 3) == (channels == 3)
    labels = Predictor.from_checkpoint(checkpoint).predict(np.asarray(Image.open(src)), size=(64, 128)).labels
    palette = np.asarray(CITYSCAPES_PALETTE, np.uint8)
    if fmt == "color":
        assert (out == palette[labels]).all()
    elif fmt == "trainid":
        assert (out == labels).all()
    elif fmt == "labelid":
        assert (out == trainid_to_labelid_lut()[labels]).all()
        assert (labelid_to_trainid_lut()[out] == labels).all()  # round trip through the official table


def test_folders_keep_layout_globs_and_files(tmp_path, checkpoint):
    photos(tmp_path / "a", ["x/one.png", "y/one.png", "two.webp"])
    photos(tmp_path / "b", ["three.jpeg", "four.JPG"])
    (tmp_path / "a" / "notes.txt").write_text("not an image: folders take image suffixes only")
    single = photos(tmp_path, ["five.bmp"])[0]
    rc = predict("--checkpoint", checkpoint, tmp_path / "a", str(tmp_path / "b" / "*.[jJ]*"), single,
                 "--out", tmp_path / "out", "--size", "64x128")
    assert rc == 0
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert written == ["five_color.png", "four_color.png", "three_color.png", "two_color.png",
                       "x/one_color.png", "y/one_color.png"]


def test_unreadable_inputs_reported_skipped_and_exit_nonzero(tmp_path, checkpoint, capsys):
    good = photos(tmp_path / "in", ["a.png", "c.png"])
    (tmp_path / "in" / "b.png").write_bytes(b"not a png")
    cut = (tmp_path / "in" / "d.png")
    cut.write_bytes(good[0].read_bytes()[:200])
    rc = predict("--checkpoint", checkpoint, tmp_path / "in", tmp_path / "missing.jpg", "--out", tmp_path / "out",
                 "--size", "64x128")
    err = capsys.readouterr().err
    assert rc == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_color.png", "c_color.png"]  # nothing else lost
    assert "3 input(s) failed" in err
    assert "b.png: not an image" in err and "d.png: the image is damaged or truncated" in err
    assert "missing.jpg: no such file or folder" in err


def test_nothing_to_do_is_a_user_error(tmp_path, checkpoint, capsys):
    assert predict("--checkpoint", checkpoint, str(tmp_path / "*.png"), "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "pattern matched no files" in err and "no images to segment" in err


def test_bad_options_and_checkpoint(tmp_path, checkpoint, capsys):
    (src,) = photos(tmp_path, ["a.png"])
    assert predict("--checkpoint", checkpoint, src, "--out", tmp_path / "o", "--size", "big") == 2
    assert "--size 'big'" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    assert predict("--checkpoint", bad, src, "--out", tmp_path / "o") == 2
    assert "not a readable checkpoint" in capsys.readouterr().err


def test_skip_existing_resumes(tmp_path, checkpoint):
    srcs = photos(tmp_path / "in", ["a.png", "b.png"])
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_color.png").write_bytes(b"kept")
    assert predict("--checkpoint", checkpoint, *srcs, "--out", out, "--size", "64x128", "--skip-existing") == 0
    assert (out / "a_color.png").read_bytes() == b"kept"
    assert Image.open(out / "b_color.png").size == (80, 48)


def test_same_output_from_two_inputs_is_refused(tmp_path, checkpoint, capsys):
    a = photos(tmp_path / "p", ["same.png"])[0]
    b = photos(tmp_path / "q", ["same.jpg"])[0]
    assert predict("--checkpoint", checkpoint, a, b, "--out", tmp_path / "out", "--size", "64x128") == 1
    assert "already the output of" in capsys.readouterr().err
    assert (tmp_path / "out" / "same_color.png").exists()


class GroundTruthPredictor:
    """Predicts each synthetic image's own ground truth (as trainIds): a perfect model."""

    classes, palette, name, backend, precision = CITYSCAPES_CLASSES, np.asarray(CITYSCAPES_PALETTE), "oracle", "stub", "fp32"

    def __init__(self, root: Path):
        self.truth = {}
        for gt in (root / "gtFine").rglob("*_gtFine_labelIds.png"):
            image = root / "leftImg8bit" / gt.parent.relative_to(root / "gtFine") / gt.name.replace(
                "gtFine_labelIds", "leftImg8bit")
            self.truth[np.asarray(Image.open(image).convert("RGB")).tobytes()] = np.asarray(Image.open(gt))

    def predict(self, image, *, size, output_hw=None):
        labels = labelid_to_trainid_lut()[self.truth[image.tobytes()]]
        labels[labels == 255] = 0  # void pixels: any class (the evaluator ignores them)
        return Prediction(labels=labels, model_ms=0.0, total_ms=0.0, backend="stub", precision="fp32",
                          input_size=labels.shape)


def test_labelid_output_is_accepted_by_the_official_evaluator(tmp_path, cityscapes, monkeypatch):
    """Files named from the inputs, labelIds, input size: cityscapesscripts finds and scores them (mIoU 1.0)."""
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as ev

    monkeypatch.setattr(predict_cli, "load_predictor", lambda *a, **k: GroundTruthPredictor(cityscapes))
    results = tmp_path / "results"
    assert predict(cityscapes / "leftImg8bit" / "val", "--out", results, "--format", "labelid") == 0
    assert sorted(p.name for p in results.rglob("*.png")) == [
        p.name for p in sorted((cityscapes / "leftImg8bit" / "val").rglob("*.png"))]

    args = copy.copy(ev.args)
    args.predictionPath, args.predictionWalk = str(results), None
    args.evalInstLevelScore, args.JSONOutput, args.quiet = False, False, True
    gts = sorted(str(p) for p in (cityscapes / "gtFine" / "val").rglob("*_gtFine_labelIds.png"))
    preds = [ev.getPrediction(args, gt) for gt in gts]  # exits the process if a file is missing or ambiguous
    scores = ev.evaluateImgLists(preds, gts, args)
    assert scores["averageScoreClasses"] == pytest.approx(1.0)


def test_real_model_labelid_output_is_scored(tmp_path, cityscapes, checkpoint):
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as ev

    results = tmp_path / "results"
    assert predict("--checkpoint", checkpoint, cityscapes / "leftImg8bit", "--out", results,
                   "--format", "labelid", "--size", "native") == 0
    args = copy.copy(ev.args)
    args.predictionPath, args.predictionWalk = str(results), None
    args.evalInstLevelScore, args.JSONOutput, args.quiet = False, False, True
    gts = sorted(str(p) for p in (cityscapes / "gtFine" / "val").rglob("*_gtFine_labelIds.png"))
    # The evaluator calls sys.exit on a missing, ambiguous, wrongly sized or multi-channel prediction.
    scores = ev.evaluateImgLists([ev.getPrediction(args, gt) for gt in gts], gts, args)
    assert set(CITYSCAPES_CLASSES) <= set(scores["classScores"])
    assert all(np.isnan(v) or 0.0 <= v <= 1.0 for v in scores["classScores"].values())


def test_out_inside_input_folder_is_not_read_back(tmp_path, checkpoint):
    photos(tmp_path / "in", ["a.png"])
    for _ in range(2):  # the second run must not segment the first run's outputs
        assert predict("--checkpoint", checkpoint, tmp_path / "in", "--out", tmp_path / "in" / "seg",
                       "--size", "64x128") == 0
    assert sorted(p.name for p in (tmp_path / "in").rglob("*.png")) == ["a.png", "a_color.png"]


def test_segmentation_failure_is_reported_and_the_rest_written(tmp_path, checkpoint, capsys, monkeypatch):
    real = Predictor.from_checkpoint(checkpoint)

    class FailsOnTall:
        classes, palette, name = real.classes, real.palette, real.name

        def predict(self, image, *, size, output_hw=None):
            if image.shape[0] > image.shape[1]:
                raise RuntimeError("backend rejected this shape")
            return real.predict(image, size=size, output_hw=output_hw)

    monkeypatch.setattr(predict_cli, "load_predictor", lambda *a, **k: FailsOnTall())
    photos(tmp_path / "in", ["wide.png"], size=(48, 96))
    photos(tmp_path / "in", ["tall.png"], size=(96, 48))
    rc = predict("--checkpoint", checkpoint, tmp_path / "in", "--out", tmp_path / "out", "--size", "native")
    err = capsys.readouterr().err
    assert rc == 1 and "tall.png: segmentation failed (RuntimeError: backend rejected this shape)" in err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["wide_color.png"]


def test_half_keeps_each_photos_aspect_ratio_and_says_where_it_ran(tmp_path, checkpoint, capsys):
    photos(tmp_path / "in", ["phone.png"], size=(48, 64))      # 4:3
    photos(tmp_path / "in", ["wide.png"], size=(40, 80))       # 2:1
    photos(tmp_path / "in", ["upright.png"], size=(64, 48))    # 3:4
    assert predict("--checkpoint", checkpoint, tmp_path / "in", "--out", tmp_path / "out", "--format", "trainid",
                   "--size", "half") == 0
    assert Image.open(tmp_path / "out" / "phone_trainIds.png").size == (64, 48)  # labels at the photo's size
    assert Image.open(tmp_path / "out" / "upright_trainIds.png").size == (48, 64)
    err = capsys.readouterr().err
    assert "the model ran at " in err
    for shape in ("512x704 (half, 4:3 bucket) for 1 image", "512x1024 (half, 2:1 bucket) for 1 image",
                  "704x512 (half, 3:4 bucket) for 1 image"):
        assert shape in err


@pytest.mark.parametrize("fmt,model_sees", [("trainid", (200, 300)), ("overlay", (1600, 2400))])
def test_labels_of_a_big_jpeg_come_from_a_reduced_decode(tmp_path, checkpoint, monkeypatch, fmt, model_sees):
    """For labels only, a JPEG far larger than the model's input is decoded at 1/8 scale (300x200
    still covers a 64x128 input); the labels are at the photo's own size. An overlay is drawn on
    the photo's own pixels, so it is decoded whole."""
    seen = []
    real = Predictor.predict

    def spy(self, image, **kwargs):
        seen.append(image.shape[:2])
        return real(self, image, **kwargs)

    monkeypatch.setattr(Predictor, "predict", spy)
    y, x = np.mgrid[0:1600, 0:2400]
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.stack([x % 256, y % 256, (x // 7) % 256], 2).astype(np.uint8)).save(folder / "big.jpg")
    assert predict("--checkpoint", checkpoint, folder, "--out", tmp_path / "out", "--format", fmt,
                   "--size", "64x128") == 0
    assert seen == [model_sees]
    suffix = "_trainIds" if fmt == "trainid" else "_overlay"
    assert Image.open(tmp_path / "out" / f"big{suffix}.png").size == (2400, 1600)


def test_model_small_uses_the_bundled_small_checkpoint(tmp_path, checkpoint, monkeypatch, capsys):
    """``--model small`` segments with the registry's small file (here: a tiny checkpoint made by the test)."""
    import shutil

    from segment import bundled

    weights = tmp_path / "weights"
    weights.mkdir()
    small = shutil.copy(checkpoint, weights / bundled.get_model("small").file)
    monkeypatch.setattr(bundled, "WEIGHTS_DIR", weights)
    (src,) = photos(tmp_path / "in", ["street.jpg"])
    assert predict("--model", "small", src, "--out", tmp_path / "out", "--format", "trainid", "--size", "64x128") == 0
    labels = Predictor.from_checkpoint(small).predict(np.asarray(Image.open(src)), size=(64, 128)).labels
    assert (np.asarray(Image.open(tmp_path / "out" / "street_trainIds.png")) == labels).all()
    capsys.readouterr()

    # The large file is not in this folder: asking for it names the file and the way out.
    assert predict("--model", "large", src, "--out", tmp_path / "out2") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("segment predict: error: the bundled large model") and "\n" not in err
    assert "camvid_mnv3_lraspp.pt, which is missing" in err and "--model small" in err
    assert not (tmp_path / "out2").exists()


def test_model_and_checkpoint_together_refused(tmp_path, checkpoint, capsys):
    (src,) = photos(tmp_path / "in", ["street.jpg"])
    assert predict("--model", "small", "--checkpoint", checkpoint, src, "--out", tmp_path / "out") == 2
    assert "pass only one" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # argparse: not a choice
        predict("--model", "medium", src, "--out", tmp_path / "out")
    assert exit_info.value.code == 2
    assert "invalid choice: 'medium'" in capsys.readouterr().err


class _Waiting:
    """A stand-in Predictor with one budget waiting for auto's measurement."""

    threads = 2

    def __init__(self):
        self.pending = 1

    def skip_pending_selections(self) -> int:
        waiting, self.pending = self.pending, 0
        return waiting


@pytest.mark.parametrize("images_left, skipped", [(10, True), (100, False)])
def test_auto_skips_its_measurement_when_the_run_would_end_sooner_without_it(monkeypatch, images_left, skipped):
    """7 candidates to build at 2 s each (the default's build) cost 14 s: 10 images of 0.5 s are
    done sooner on the default, 100 are not."""
    monkeypatch.setattr("segment.backends.candidate_specs", lambda threads=None: [None] * 7)
    first = Prediction(labels=np.zeros((4, 4), np.uint8), model_ms=1.0, total_ms=2010.0, backend="openvino",
                       precision="bf16", input_size=(4, 4), stages_ms={"other": 2000.0})
    waiting = _Waiting()
    why = predict_cli._skip_measurement_if_run_is_short(waiting, first, image_s=2.5, images_left=images_left)
    assert (why is not None) == skipped and waiting.pending == (0 if skipped else 1)
    if skipped:
        assert "10 image(s) left would take about 5.0 s on the default, measuring about 14 s" in why
    # A single photo (nothing after it), or nothing waiting (a remembered choice): nothing to skip or say.
    assert predict_cli._skip_measurement_if_run_is_short(_Waiting(), first, image_s=2.5, images_left=0) is None
    waiting.pending = 0
    assert predict_cli._skip_measurement_if_run_is_short(waiting, first, image_s=2.5, images_left=1) is None
