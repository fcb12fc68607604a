"""Split expressions: unions with '+', whole sequences kept or dropped with '@'."""

import cv2
import numpy as np
import pytest

from data.camvid import CamVidDataset, camvid_sequence
from data.errors import DatasetError
from data.splits import SplitExpr, parse_split

SEQUENCES = {"train": ["0001TP_000010", "0001TP_000020", "0006R0_f00930", "0016E5_00390"],
             "val": ["0016E5_07959", "0016E5_07961"]}


@pytest.fixture
def camvid(tmp_path):
    for split, stems in SEQUENCES.items():
        for folder in (split, f"{split}annot"):
            (tmp_path / folder).mkdir()
        for stem in stems:
            cv2.imwrite(str(tmp_path / split / f"{stem}.png"), np.zeros((8, 8, 3), np.uint8))
            cv2.imwrite(str(tmp_path / f"{split}annot" / f"{stem}.png"), np.zeros((8, 8), np.uint8))
    return tmp_path


def stems(root, split):
    return [img.stem for img, _ in CamVidDataset(root=root, split=split).files]


def test_parse():
    allowed = ("train", "val", "test")
    assert parse_split("train", allowed=allowed, dataset="X") == SplitExpr(("train",))
    assert parse_split("train+val@!0001TP", allowed=allowed, dataset="X") == SplitExpr(("train", "val"), drop=("0001TP",))
    assert parse_split("train@0006R0,0016E5", allowed=allowed, dataset="X") == SplitExpr(("train",), keep=("0006R0", "0016E5"))


def test_union_and_sequence_selection(camvid):
    assert stems(camvid, "train+val") == SEQUENCES["train"] + SEQUENCES["val"]
    assert stems(camvid, "train+val@!0001TP") == ["0006R0_f00930", "0016E5_00390"] + SEQUENCES["val"]
    assert stems(camvid, "train@0001TP") == ["0001TP_000010", "0001TP_000020"]
    assert stems(camvid, "train@0006R0,0016E5") == ["0006R0_f00930", "0016E5_00390"]
    # the held-out drive and the training drives never share a frame
    held_out, rest = set(stems(camvid, "train@0001TP")), set(stems(camvid, "train+val@!0001TP"))
    assert not held_out & rest and {camvid_sequence(camvid / f"{s}.png") for s in held_out} == {"0001TP"}


@pytest.mark.parametrize("expr, message", [
    ("trian", "must be one of train, val, test"),
    ("train+train", "names a split twice"),
    ("train@", "no sequence after '@'"),
    ("val@0001TP", "no sequence 0001TP in val; its sequences are 0016E5"),
    ("val@!0016E5", "selects no images"),
])
def test_bad_expressions_say_what_is_wrong(camvid, expr, message):
    with pytest.raises(DatasetError, match=message):
        CamVidDataset(root=camvid, split=expr)
