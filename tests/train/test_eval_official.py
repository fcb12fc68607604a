"""Our mIoU against the official Cityscapes evaluator (cityscapesscripts) on the same predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling as cs_eval
from data.cityscapes import CityscapesDataset
from data.labels import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, IGNORE_INDEX, trainid_to_labelid_lut
from segment.cli import main as segment_main
from segment.checkpoint import make_checkpoint, save_checkpoint
from segment.model import build_model
from segment.presets import get_preset
from data.transforms import MEAN, STD
from train.metrics import ConfusionMatrix


def official_miou(monkeypatch, tmp_path, root, predictions) -> float:
    """cityscapesscripts' evaluateImgLists over gtFine/val with predictions from ``predictions``."""
    args = cs_eval.args
    monkeypatch.setattr(args, "cityscapesPath", str(root))
    monkeypatch.setattr(args, "predictionPath", str(predictions))
    monkeypatch.setattr(args, "predictionWalk", None)
    monkeypatch.setattr(args, "exportFile", str(tmp_path / "official.json"))
    monkeypatch.setattr(args, "evalInstLevelScore", False)  # needs instanceIds, which synthetic trees lack
    monkeypatch.setattr(args, "quiet", True)
    gts = sorted(str(p) for p in (root / "gtFine" / "val").glob("*/*_gtFine_labelIds.png"))
    preds = [cs_eval.getPrediction(args, gt) for gt in gts]
    return cs_eval.evaluateImgLists(preds, gts, args)["averageScoreClasses"]


def test_confusion_matrix_agrees_with_official_evaluator(synth_root, tmp_path, monkeypatch):
    """Noisy predictions (truth with a quarter of pixels replaced by random classes) written as labelIds."""
    ds = CityscapesDataset(root=synth_root, split="val")
    to_labelid = trainid_to_labelid_lut()
    rng = np.random.default_rng(0)
    out = tmp_path / "pred"
    out.mkdir()
    cm = ConfusionMatrix(num_classes=19)
    for i, (image_path, _) in enumerate(ds.files):
        truth = ds[i][1].numpy()
        pred = np.where(truth == IGNORE_INDEX, rng.integers(0, 19, truth.shape), truth)
        noise = rng.random(truth.shape) < 0.25
        pred = np.where(noise, rng.integers(0, 19, truth.shape), pred).astype(np.uint8)
        cm.update(torch.from_numpy(pred), torch.from_numpy(truth))
        Image.fromarray(to_labelid[pred]).save(out / image_path.name.replace("leftImg8bit", "pred"))
    ours = cm.summary(classes=CITYSCAPES_CLASSES, eval_ids=range(19))["miou"]
    theirs = official_miou(monkeypatch, tmp_path, synth_root, out)
    assert 0.3 < ours < 0.95  # a non-trivial score, so agreement means something
    assert ours == pytest.approx(theirs, abs=1e-4)


@pytest.fixture
def random_checkpoint(tmp_path):
    """The small model, untrained, with BN variances and classifiers scrambled so it predicts several classes."""
    torch.manual_seed(1)
    config = get_preset("small").config
    model = build_model(config).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.fill_(0.05)  # amplifies every activation: the argmax varies across the image
        if isinstance(m, torch.nn.Conv2d) and m.out_channels == 19:
            m.weight.data.normal_(0, 1.0)
    path = tmp_path / "model.pt"
    save_checkpoint(path, make_checkpoint(model=model, config=config, classes=CITYSCAPES_CLASSES,
                                          palette=CITYSCAPES_PALETTE, mean=MEAN, std=STD))
    return path


def test_segment_eval_json_agrees_with_official_evaluator(random_checkpoint, synth_root, tmp_path, monkeypatch,
                                                          capsys):
    """End to end: `segment eval --json --save-labelids` and the official evaluator on the PNGs it wrote."""
    pred_dir = tmp_path / "labelids"
    status = segment_main(["eval", "--checkpoint", str(random_checkpoint), "--dataset", "synthetic",
                           "--data-root", str(synth_root), "--split", "val", "--json", "--workers", "0",
                           "--save-labelids", str(pred_dir)])
    assert status == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result) == {"miou", "per_class", "pixel_acc", "images", "small_input_images"}
    assert result["images"] == 4 and len(result["per_class"]) == 19
    assert result["small_input_images"] == 0  # the checkpoint carries no small-input statistics
    predicted = np.unique(np.concatenate([np.array(Image.open(p)).ravel() for p in pred_dir.glob("*.png")]))
    assert len(predicted) >= 4, "predictions too uniform for a meaningful comparison"
    assert 0 < result["miou"] < 1
    assert result["miou"] == pytest.approx(official_miou(monkeypatch, tmp_path, synth_root, pred_dir), abs=1e-4)
