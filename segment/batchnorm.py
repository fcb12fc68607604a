"""BatchNorm statistics measured afresh ("precise BN"), for training and for the accuracy guard.

``recalibrate_batchnorm`` replaces every BatchNorm layer's running mean and
variance by their plain average over the batches given, with the current
weights. Training uses it before an evaluation (``train.engine.recalibrate_bn``):
with a small BN momentum the running statistics of a short run lag far behind
its weights. The accuracy guard uses it to give a randomly
initialised preset street-scene statistics (``segment.accuracy.calibrate_batchnorm``).
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch


def batchnorm_layers(model: torch.nn.Module) -> list[torch.nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_batchnorm(model: torch.nn.Module, batches: Iterable[torch.Tensor], *,
                          reduce: Callable[[torch.Tensor], object] | None = None) -> int:
    """Set every BN layer's running statistics to their average over ``batches`` (model inputs).

    Each batch's mean and (unbiased) variance count once, whatever its size, as
    with ``momentum=None`` in PyTorch. Weights and the layers' momenta are left
    as they were, and so is the model's train/eval mode. ``reduce`` is then
    called on every running-statistics buffer, to change it in place (e.g. to
    average it over the processes of a distributed run). Returns the number of
    batches seen.
    """
    norms = batchnorm_layers(model)
    if not norms:
        return 0
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    was_training = model.training
    model.train()
    seen = 0
    try:
        for x in batches:
            model(x)
            seen += 1
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    if reduce is not None:
        for m in norms:
            reduce(m.running_mean)
            reduce(m.running_var)
    return seen
