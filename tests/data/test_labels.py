import numpy as np
import pytest
from cityscapesscripts.helpers.labels import id2label, labels as cs_labels, trainId2label

from data.labels import (
    CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, IGNORE_INDEX, label_space, labelid_to_trainid_lut,
    trainid_to_labelid_lut,
)


def test_classes_and_palette_follow_the_official_table():
    assert len(CITYSCAPES_CLASSES) == 19 == len(CITYSCAPES_PALETTE)
    for train_id, (name, color) in enumerate(zip(CITYSCAPES_CLASSES, CITYSCAPES_PALETTE)):
        assert trainId2label[train_id].name == name
        assert trainId2label[train_id].color == color
    assert CITYSCAPES_CLASSES[0] == "road" and CITYSCAPES_CLASSES[-1] == "bicycle"


def test_labelid_lut_matches_table_and_ignores_the_rest():
    lut = labelid_to_trainid_lut()
    assert lut.dtype == np.uint8 and lut.shape == (256,)
    for value in range(256):
        label = id2label.get(value)
        expected = label.trainId if label is not None and 0 <= label.trainId < 255 else IGNORE_INDEX
        assert lut[value] == expected, value


def test_trainid_lut_round_trips():
    to_label, to_train = trainid_to_labelid_lut(), labelid_to_trainid_lut()
    ids = np.arange(19, dtype=np.uint8)
    assert (to_train[to_label[ids]] == ids).all()
    assert to_label[IGNORE_INDEX] == 0 and id2label[0].ignoreInEval  # 255 -> "unlabeled", not scored
    assert sum(1 for lab in cs_labels if not lab.ignoreInEval) == 19


def test_label_spaces():
    cs = label_space("cityscapes")
    assert cs.eval_train_ids == tuple(range(19)) and cs.num_classes == 19
    cv = label_space("camvid")
    assert cv.classes == cs.classes and cv.palette == cs.palette
    assert cv.eval_classes == ("sky", "building", "pole", "road", "sidewalk", "vegetation",
                               "traffic sign", "fence", "car", "person", "rider")
    with pytest.raises(ValueError, match="unknown label space"):
        label_space("voc")
