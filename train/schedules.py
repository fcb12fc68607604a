"""Learning-rate schedules as factors of the peak lr, for ``LambdaLR``.

A plain factor function keeps the scheduler's state_dict to numbers, so it
round-trips through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
from functools import partial

import torch

SCHEDULES = ("poly", "cosine", "onecycle", "constant")


def lr_factor(step: int, *, schedule: str, iters: int, warmup: int, power: float = 0.9) -> float:
    """Factor of the peak lr at optimizer step ``step`` (0-based)."""
    if schedule == "onecycle":
        # Leslie Smith's one-cycle as torch's OneCycleLR does it: 30% cosine rise
        # from lr/25, then cosine decay to lr/1e4 (warm-up is built in).
        rise = max(1, int(0.3 * iters))
        if step < rise:
            return _cos_between(1 / 25, 1.0, step / rise)
        return _cos_between(1.0, 1e-4, min(1.0, (step - rise) / max(1, iters - rise)))
    if step < warmup:
        return 0.01 + 0.99 * step / warmup  # linear warm-up from lr/100
    progress = min(1.0, (step - warmup) / max(1, iters - warmup))
    if schedule == "poly":
        return (1.0 - progress) ** power
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "constant":
        return 1.0
    raise ValueError(f"unknown lr schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}")


def _cos_between(start: float, end: float, t: float) -> float:
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * t))


def build_scheduler(cfg, optimizer: torch.optim.Optimizer, *, last_iteration: int = 0):
    """A LambdaLR of ``cfg``'s schedule over ``cfg.iters`` steps, positioned after ``last_iteration`` steps.

    It sets the optimizer's lr to that of step ``last_iteration`` (0-based), the
    next step to run. A fresh run passes 0. A resumed run passes the checkpoint's
    iteration after loading the optimizer's state: its param groups carry
    ``initial_lr``, the peak lr the schedule scales. Building the schedule anew for
    the run's own ``--iters`` (rather than loading the stored scheduler's state) is
    what lets ``--resume last.pt --iters N`` follow the schedule over N from the
    first resumed step on.
    """
    factor = partial(lr_factor, schedule=cfg.lr_schedule, iters=cfg.iters, warmup=cfg.warmup_iters,
                     power=cfg.poly_power)
    factor(0)  # an unknown schedule name raises ValueError now, not at the first step
    # LambdaLR's constructor takes one step itself: from last_epoch to last_epoch + 1.
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor, last_epoch=last_iteration - 1)
