"""segment.batchnorm: running statistics recomputed as the plain average over the batches given."""

import numpy as np
import pytest
import torch
from torch import nn

from segment.batchnorm import recalibrate_batchnorm


def _model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.BatchNorm2d(2, momentum=0.01), nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2))
    with torch.no_grad():  # stale statistics, far from anything below
        for bn in (model[0], model[2]):
            bn.running_mean.fill_(50.0)
            bn.running_var.fill_(9.0)
    return model


def test_statistics_are_the_average_of_each_batchs_mean_and_unbiased_variance():
    model = _model().eval()
    # Channel 0: batch 1 holds 0 and 2 (mean 1, unbiased var 2), batch 2 holds 4 and 4 (mean 4, var 0).
    # Channel 1: batch 1 holds 1 and 1 (mean 1, var 0), batch 2 holds 0 and 6 (mean 3, var 18).
    b1 = torch.tensor([[[[0.0]], [[1.0]]], [[[2.0]], [[1.0]]]])
    b2 = torch.tensor([[[[4.0]], [[0.0]]], [[[4.0]], [[6.0]]]])
    weight = model[1].weight.detach().clone()
    assert recalibrate_batchnorm(model, [b1, b2]) == 2
    assert model[0].running_mean.tolist() == pytest.approx([2.5, 2.0])
    assert model[0].running_var.tolist() == pytest.approx([1.0, 9.0])
    assert model[0].momentum == 0.01 and model[2].momentum == 0.1  # momenta kept
    assert not model.training  # eval mode kept
    assert torch.equal(model[1].weight, weight)  # weights untouched
    assert model[2].running_mean.abs().max() < 50  # every BN layer, not only the first


def test_train_mode_is_kept_and_reduce_sees_every_buffer():
    model = _model().train()
    seen = []
    recalibrate_batchnorm(model, [torch.ones(2, 2, 1, 1)], reduce=lambda buf: seen.append(buf.data_ptr()))
    assert model.training
    expected = [b.data_ptr() for bn in (model[0], model[2]) for b in (bn.running_mean, bn.running_var)]
    assert seen == expected


def test_mode_and_momenta_are_restored_when_a_batch_fails():
    model = _model().eval()

    def batches():
        yield torch.ones(2, 2, 1, 1)
        raise RuntimeError("loader died")

    with pytest.raises(RuntimeError, match="loader died"):
        recalibrate_batchnorm(model, batches())
    assert not model.training and model[0].momentum == 0.01


def test_guard_calibration_uses_the_same_statistics():
    from segment.accuracy import calibrate_batchnorm

    images = [np.full((4, 4, 3), v, np.uint8) for v in (0, 255)]
    model = nn.Sequential(nn.BatchNorm2d(3))
    calibrate_batchnorm(model, images, mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
    # One batch of both images: per channel half the pixels at (0-0.5)/0.25 = -2, half at (1-0.5)/0.25 = +2.
    n = 2 * 4 * 4
    assert model[0].running_mean.tolist() == pytest.approx([0.0] * 3, abs=1e-6)
    assert model[0].running_var.tolist() == pytest.approx([4.0 * n / (n - 1)] * 3)
    assert not model.training
