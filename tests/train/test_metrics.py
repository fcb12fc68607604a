"""The confusion matrix and its scores: brute force, edge cases, and the official evaluator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from train.metrics import ConfusionMatrix, format_table


def brute_iou(pred: np.ndarray, target: np.ndarray, c: int) -> float:
    valid = target != 255
    tp = np.sum((pred == c) & (target == c) & valid)
    fp = np.sum((pred == c) & (target != c) & valid)
    fn = np.sum((pred != c) & (target == c) & valid)
    return tp / (tp + fp + fn) if tp + fp + fn else math.nan


def test_matches_brute_force_over_several_batches():
    rng = np.random.default_rng(0)
    cm = ConfusionMatrix(num_classes=5)
    preds, targets = [], []
    for _ in range(3):
        target = rng.integers(0, 5, (2, 16, 24))
        target[rng.random(target.shape) < 0.2] = 255
        pred = np.where(rng.random(target.shape) < 0.6, np.clip(target, 0, 4), rng.integers(0, 5, target.shape))
        cm.update(torch.from_numpy(pred), torch.from_numpy(target))
        preds.append(pred), targets.append(target)
    pred, target = np.concatenate(preds), np.concatenate(targets)
    assert int(cm.mat.sum()) == int((target != 255).sum())
    for c in range(5):
        assert cm.iou()[c] == pytest.approx(brute_iou(pred, target, c), abs=1e-12)
    summary = cm.summary(classes=list("abcde"), eval_ids=range(5))
    assert summary["pixel_acc"] == pytest.approx(np.mean(pred[target != 255] == target[target != 255]))
    assert summary["miou"] == pytest.approx(np.mean([brute_iou(pred, target, c) for c in range(5)]))


def test_absent_class_is_left_out_of_the_mean_but_unscored_predictions_count_as_misses():
    target = torch.tensor([[0, 0, 1, 1]])
    pred = torch.tensor([[0, 0, 1, 3]])  # class 3 is predicted but not scored
    cm = ConfusionMatrix(num_classes=4)
    cm.update(pred, target)
    s = cm.summary(classes=["a", "b", "c", "d"], eval_ids=[0, 1, 2])
    assert math.isnan(s["per_class"]["c"])  # neither in truth nor predicted
    assert s["per_class"]["b"] == pytest.approx(0.5)  # the pixel predicted as 'd' is a miss of 'b'
    assert s["miou"] == pytest.approx((1.0 + 0.5) / 2)
    assert s["pixel_acc"] == pytest.approx(3 / 4)
    assert "n/a" in format_table(s)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="shape"):
        ConfusionMatrix(num_classes=3).update(torch.zeros(2, 3), torch.zeros(3, 2))
