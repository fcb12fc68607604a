"""segment.accuracy: the one IoU/mIoU definition (guard, 'segment eval', trainer) and pixel agreement."""

import math

import numpy as np
import pytest

from segment.accuracy import agreement, class_iou, confusion, mean_iou


def test_hand_computed_iou_and_miou():
    # rows = true class, columns = predicted class
    conf = np.array([[3, 1, 0],
                     [0, 2, 0],
                     [0, 2, 0]])
    # class 0: 3 / (3 + 1 + 0) = 0.75; class 1: 2 / (2 + 3 + 0) = 0.4; class 2: 0 / 2 = 0
    assert class_iou(conf).tolist() == pytest.approx([0.75, 0.4, 0.0])
    assert mean_iou(conf) == pytest.approx((0.75 + 0.4 + 0.0) / 3)
    assert mean_iou(conf, [0, 1]) == pytest.approx((0.75 + 0.4) / 2)  # only the scored classes


def test_absent_class_has_no_iou_and_is_left_out():
    conf = np.array([[2, 0, 0],
                     [0, 0, 0],
                     [0, 0, 2]])
    iou = class_iou(conf)
    assert iou[0] == 1.0 and math.isnan(iou[1]) and iou[2] == 1.0
    assert mean_iou(conf, [0, 1, 2]) == 1.0
    assert math.isnan(mean_iou(np.zeros((3, 3), int)))


def test_prediction_of_an_unscored_class_is_a_miss_but_not_averaged():
    pred = np.array([0, 0, 1, 2])
    target = np.array([0, 0, 1, 1])  # class 2 is predicted once, never true, not scored
    conf = confusion(pred, target, 3)
    assert conf.tolist() == [[2, 0, 0], [0, 1, 1], [0, 0, 0]]
    assert mean_iou(conf, [0, 1]) == pytest.approx((1.0 + 0.5) / 2)
    assert mean_iou(conf) == pytest.approx((1.0 + 0.5 + 0.0) / 3)  # what scoring every class would give


def test_confusion_ignores_void_and_agreement_counts_pixels():
    conf = confusion(np.array([1, 0, 1]), np.array([1, 255, 0]), 2)
    assert conf.tolist() == [[0, 1], [0, 1]]
    assert agreement(np.array([[1, 2], [3, 4]]), np.array([[1, 2], [0, 4]])) == 0.75
    with pytest.raises(ValueError, match="shape"):
        agreement(np.zeros((2, 2)), np.zeros((2, 3)))


def test_trainer_scores_with_the_same_definition():
    import torch

    from train.metrics import ConfusionMatrix

    rng = np.random.default_rng(0)
    target, pred = rng.integers(0, 6, 500), rng.integers(0, 6, 500)
    cm = ConfusionMatrix(num_classes=6)
    cm.update(torch.from_numpy(pred), torch.from_numpy(target))
    s = cm.summary(classes=list("abcdef"), eval_ids=[0, 2, 4])
    assert s["miou"] == mean_iou(confusion(pred, target, 6), [0, 2, 4])


def test_the_guard_judges_float_precisions_by_agreement_and_int8_by_miou():
    from segment.accuracy import MAX_MIOU_DROP, guard_passes

    assert MAX_MIOU_DROP == 0.5
    verdict = lambda precision, agreement, drop: guard_passes(  # noqa: E731
        precision=precision, agreement=agreement, miou_drop=drop, min_agreement=0.995)
    assert verdict("bf16", 0.998, 0.05) and verdict("mixed", 0.998, None)
    assert not verdict("bf16", 0.993, -0.04)  # rounding should not move 0.7% of the labels
    assert not verdict("fp32", 0.999, 0.5)  # nor lose half a point
    assert verdict("int8", 0.993, -0.04) and verdict("int8", 0.989, 0.37)
    assert not verdict("int8", 0.999, 0.6)
    assert not verdict("int8", 0.999, None)  # int8 needs a labelled-set measurement
    # The label of int8 whose float layers ran bf16 (a benchmark row's precision) is judged as int8.
    assert verdict("int8+bf16", 0.993, 0.18) and not verdict("int8+bf16", 0.999, 0.6)
