"""The Cityscapes reader against the official tools (cityscapesscripts), and its validation."""

import shutil

import cv2
import numpy as np
import pytest
import torch
from cityscapesscripts.helpers.labels import id2label
from PIL import Image

import cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling as cs_eval
from data.cityscapes import CityscapesDataset, validate_cityscapes
from data.errors import DatasetError
from data.labels import trainid_to_labelid_lut


def official_train_ids(label_path):
    """trainIds computed independently: PIL decode + cityscapesscripts' id2label, pixel by pixel."""
    ids = np.array(Image.open(label_path))
    out = np.full(ids.shape, 255, np.int64)
    for value in np.unique(ids):
        train_id = id2label[int(value)].trainId
        out[ids == value] = train_id if 0 <= train_id < 255 else 255
    return out


@pytest.mark.parametrize("split", ["train", "val"])
def test_reader_trainids_equal_official_table_for_every_pixel(synth_root, split):
    ds = CityscapesDataset(root=synth_root, split=split)
    assert len(ds) == 4
    for i, (_, label_path) in enumerate(ds.files):
        image, mask = ds[i]
        assert image.dtype.is_floating_point and image.shape == (3, 128, 256)
        assert mask.dtype == torch.int64
        assert np.array_equal(mask.numpy(), official_train_ids(label_path))


def test_labeltrainids_file_is_preferred(tree):
    ds = CityscapesDataset(root=tree, split="val")
    image_path, label_path = ds.files[0]
    train_ids_path = label_path.with_name(label_path.name.replace("labelIds", "labelTrainIds"))
    marker = np.full((128, 256), 7, np.uint8)  # every pixel "traffic sign": distinguishable
    cv2.imwrite(str(train_ids_path), marker)
    ds = CityscapesDataset(root=tree, split="val")
    assert ds.files[0] == (image_path, train_ids_path)
    assert (ds[0][1] == 7).all()


def _run_official_evaluator(monkeypatch, tmp_path, root, predictions, *, instances=False):
    """cityscapesscripts' evaluator on gtFine/val; everything it writes stays in tmp_path.

    Returns (mIoU over classes, iIoU over instance classes or None)."""
    args = cs_eval.args
    monkeypatch.setattr(args, "cityscapesPath", str(root))
    monkeypatch.setattr(args, "groundTruthSearch", str(root / "gtFine" / "val" / "*" / "*_gtFine_labelIds.png"))
    monkeypatch.setattr(args, "predictionPath", str(predictions))
    monkeypatch.setattr(args, "predictionWalk", None)
    monkeypatch.setattr(args, "exportFile", str(tmp_path / "result.json"))
    monkeypatch.setattr(args, "evalInstLevelScore", instances)  # iIoU reads *_gtFine_instanceIds.png
    if instances and not hasattr(np, "in1d"):
        # cityscapesscripts' instance-level code calls np.in1d, which NumPy 2.4 removed;
        # np.isin is its documented replacement (same results for 1-D use).
        monkeypatch.setattr(np, "in1d", lambda a, b, **kw: np.isin(a, b, **kw).ravel(), raising=False)
    monkeypatch.setattr(args, "quiet", True)
    gts = sorted(str(p) for p in (root / "gtFine" / "val").glob("*/*_gtFine_labelIds.png"))
    preds = [cs_eval.getPrediction(args, gt) for gt in gts]
    result = cs_eval.evaluateImgLists(preds, gts, args)
    assert (tmp_path / "result.json").is_file()
    return result["averageScoreClasses"], (result["averageScoreInstClasses"] if instances else None)


def test_official_evaluator_scores_ground_truth_as_perfect(synth_root, tmp_path, monkeypatch):
    pred = tmp_path / "pred"
    for gt in (synth_root / "gtFine" / "val").glob("*/*_gtFine_labelIds.png"):
        pred.mkdir(exist_ok=True)
        shutil.copy(gt, pred / gt.name.replace("gtFine_labelIds", "pred"))
    miou, iiou = _run_official_evaluator(monkeypatch, tmp_path, synth_root, pred, instances=True)
    assert miou == pytest.approx(1.0)
    assert iiou == pytest.approx(1.0)  # the instanceIds files are read and agree with the labels


def test_official_evaluator_on_our_trainids_converted_back(synth_root, tmp_path, monkeypatch):
    """What our reader yields, written back as labelIds (the submission path), is scored 1.0;
    the same predictions with one class wiped score below 1 (the check can fail)."""
    ds = CityscapesDataset(root=synth_root, split="val")
    to_label = trainid_to_labelid_lut()
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir(), bad.mkdir()
    for i, (_, label_path) in enumerate(ds.files):
        train_ids = ds[i][1].numpy().astype(np.uint8)
        name = label_path.name.replace("gtFine_labelIds", "pred")
        Image.fromarray(to_label[train_ids]).save(good / name)
        wiped = np.where(train_ids == 13, 0, train_ids).astype(np.uint8)  # cars -> road
        Image.fromarray(to_label[wiped]).save(bad / name)
    assert _run_official_evaluator(monkeypatch, tmp_path, synth_root, good)[0] == pytest.approx(1.0)
    assert _run_official_evaluator(monkeypatch, tmp_path, synth_root, bad)[0] < 0.99


# --- validation: every bad input stops with a message naming the file and what to do ---


def test_valid_tree_counts(synth_root):
    assert validate_cityscapes(synth_root) == {"train": 4, "val": 4}
    assert validate_cityscapes(synth_root, ("val",), deep=True) == {"val": 4}


def test_missing_root(tmp_path):
    with pytest.raises(DatasetError, match="dataset root not found.*cityscapes-dataset.com"):
        validate_cityscapes(tmp_path / "nope")


@pytest.mark.parametrize("folder", ["leftImg8bit/val", "gtFine/val"])
def test_missing_folder(tree, folder):
    shutil.rmtree(tree / folder)
    with pytest.raises(DatasetError) as err:
        validate_cityscapes(tree)
    assert str(tree / folder) in str(err.value) and "folder not found" in str(err.value)
    with pytest.raises(DatasetError):
        CityscapesDataset(root=tree, split="val")  # the dataset refuses too, before any loading


def _first(tree, split, kind):
    pattern = "*/*_leftImg8bit.png" if kind == "image" else "*/*_gtFine_labelIds.png"
    top = "leftImg8bit" if kind == "image" else "gtFine"
    return sorted((tree / top / split).glob(pattern))[0]


def test_image_without_label(tree):
    label = _first(tree, "train", "label")
    label.unlink()
    with pytest.raises(DatasetError, match="image without its label") as err:
        validate_cityscapes(tree)
    assert str(label) in str(err.value) and "restore the label" in str(err.value)


def test_label_without_image(tree):
    image = _first(tree, "val", "image")
    image.unlink()
    with pytest.raises(DatasetError, match="label without its image") as err:
        validate_cityscapes(tree)
    assert str(image) in str(err.value)


def test_unreadable_png(tree):
    image = _first(tree, "train", "image")
    image.write_bytes(b"this is not a png at all" * 10)
    with pytest.raises(DatasetError, match="not a PNG file") as err:
        validate_cityscapes(tree)
    assert str(image) in str(err.value) and "re-extract" in str(err.value)


@pytest.mark.parametrize("kind", ["image", "label"])
def test_truncated_png(tree, kind):
    path = _first(tree, "val", kind)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="truncated PNG") as err:
        validate_cityscapes(tree)
    assert str(path) in str(err.value)


def test_corrupt_image_data_found_by_deep_check(tree):
    """Damage inside the compressed data keeps the header and end marker: only deep sees it."""
    path = _first(tree, "val", "image")
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 2000] = bytes(2000)
    path.write_bytes(bytes(data))
    assert validate_cityscapes(tree, ("val",)) == {"val": 4}
    with pytest.raises(DatasetError, match="cannot be decoded") as err:
        validate_cityscapes(tree, ("val",), deep=True)
    assert str(path) in str(err.value)


def test_wrong_label_size(tree):
    label = _first(tree, "train", "label")
    cv2.imwrite(str(label), np.zeros((64, 128), np.uint8))
    with pytest.raises(DatasetError, match=r"label is 128x64 \(WxH\) but its image .* is 256x128") as err:
        validate_cityscapes(tree)
    assert str(label) in str(err.value)


def test_unknown_label_ids(tree):
    label = _first(tree, "val", "label")
    ids = cv2.imread(str(label), cv2.IMREAD_UNCHANGED)
    ids[:3, :3] = 77
    ids[5, 5] = 200
    cv2.imwrite(str(label), ids)
    with pytest.raises(DatasetError, match="unknown label values 77, 200") as err:
        validate_cityscapes(tree)
    assert str(label) in str(err.value) and "labelIds" in str(err.value)


def test_colour_label_is_refused(tree):
    label = _first(tree, "val", "label")
    cv2.imwrite(str(label), np.zeros((128, 256, 3), np.uint8))
    with pytest.raises(DatasetError, match="single-channel 8-bit") as err:
        validate_cityscapes(tree)
    assert str(label) in str(err.value)


def test_many_problems_are_summarised(tree):
    for label in sorted((tree / "gtFine" / "train").glob("*/*_gtFine_labelIds.png")):
        label.write_bytes(b"")
    with pytest.raises(DatasetError, match="4 problems in the dataset") as err:
        validate_cityscapes(tree)
    assert str(err.value).count("not a PNG file") == 4


def test_bad_split_name(synth_root):
    with pytest.raises(DatasetError, match="split must be one of"):
        CityscapesDataset(root=synth_root, split="training")
