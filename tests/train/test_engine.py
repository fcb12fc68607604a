"""train.engine: BN recalibration."""

from __future__ import annotations

import torch

from segment.model import build_model
from segment.presets import get_preset
from train.engine import recalibrate_bn


def test_recalibrated_bn_reproduces_batch_statistics_in_eval_mode():
    torch.manual_seed(0)
    model = build_model(get_preset("small").config)
    x = torch.randn(8, 3, 128, 128) * 2 + 0.5  # large enough that unbiased ~ biased variance
    with torch.no_grad():
        model.train()
        for _ in range(3):  # a few steps of momentum-0.01 updates: far from the batch statistics
            model(x)
        model.eval()
        stale = model(x)
        model.train()
        reference = model(x)  # normalised with the batch's own statistics
        momenta = [m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        recalibrate_bn(model=model.eval(), batches=[(x, None)], device=torch.device("cpu"))
        assert not model.training  # mode restored
        assert [m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)] == momenta
        fresh = model(x)
    err_stale = (stale - reference).abs().mean()
    err_fresh = (fresh - reference).abs().mean()
    # Running var is stored unbiased (n/(n-1)), so not exact, but far closer than the stale statistics.
    assert err_fresh < 0.05 * err_stale
