"""LR schedules: the lr of each step against the formulas of docs/train.md ("Learning-rate schedules").

The expected values are written out here from the documented formulas (and, at
a few steps, as plain numbers), not taken from ``train.schedules``, so these
tests catch a change of the schedule, not only a change of its plumbing.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from train.config import TrainConfig
from train.schedules import build_scheduler

PEAK = 0.1


# --- docs/train.md's formulas, step s (0-based), N iterations, W warm-up steps

def warmup(s, W):
    return PEAK * (0.01 + 0.99 * s / W)


def progress(s, N, W):
    return min(1.0, (s - W) / max(1, N - W))


def poly(s, N, W, p=0.9):
    return warmup(s, W) if s < W else PEAK * (1 - progress(s, N, W)) ** p


def cosine(s, N, W):
    return warmup(s, W) if s < W else PEAK * (1 + math.cos(math.pi * progress(s, N, W))) / 2


def constant(s, N, W):
    return warmup(s, W) if s < W else PEAK


def onecycle(s, N, W):  # W is ignored: one-cycle has its own rise
    R = max(1, math.floor(0.3 * N))
    if s < R:
        return PEAK * (1 / 25 + (1 - 1 / 25) * (1 - math.cos(math.pi * s / R)) / 2)
    u = min(1.0, (s - R) / max(1, N - R))
    return PEAK * (1e-4 + (1 - 1e-4) * (1 + math.cos(math.pi * u)) / 2)


FORMULAS = {"poly": poly, "cosine": cosine, "constant": constant, "onecycle": onecycle}


def config(schedule, iters, warmup_iters):
    return TrainConfig(lr=PEAK, lr_schedule=schedule, iters=iters, warmup_iters=warmup_iters, poly_power=0.9)


def optimizer():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=PEAK)


def lrs(scheduler, opt, steps):
    """The lr each of the next ``steps`` optimizer steps runs at (read before the step, as the trainer logs it)."""
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return out


@pytest.mark.parametrize("schedule", sorted(FORMULAS))
@pytest.mark.parametrize("iters,warmup_iters", [(20, 5), (10, 0), (7, 3)])
def test_every_step_follows_the_documented_formula(schedule, iters, warmup_iters):
    opt = optimizer()
    got = lrs(build_scheduler(config(schedule, iters, warmup_iters), opt), opt, iters + 2)  # and past the end
    want = [FORMULAS[schedule](s, iters, warmup_iters) for s in range(iters + 2)]
    assert got == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_known_values():
    """A few steps worked out by hand (peak 0.1, 10 iterations, 2 warm-up steps)."""
    def run(schedule, warmup_iters=2):
        opt = optimizer()
        return lrs(build_scheduler(config(schedule, 10, warmup_iters), opt), opt, 11)

    p = run("poly")
    assert p[0] == pytest.approx(0.001)  # lr/100
    assert p[1] == pytest.approx(0.0505)  # halfway up: 0.1 * (0.01 + 0.99 / 2)
    assert p[2] == pytest.approx(0.1)  # the peak, once warm-up is over
    assert p[6] == pytest.approx(0.1 * 0.5 ** 0.9)  # halfway down the 8 decay steps
    assert p[10] == 0.0
    c = run("cosine")
    assert c[6] == pytest.approx(0.05) and c[10] == pytest.approx(0.0, abs=1e-18)
    assert run("constant")[2:] == [pytest.approx(0.1)] * 9
    o = run("onecycle", warmup_iters=0)  # R = 3 rising steps
    assert o[0] == pytest.approx(0.1 / 25)
    assert o[3] == pytest.approx(0.1)  # the peak at R
    assert o[10] == pytest.approx(0.1 * 1e-4)  # the floor at N


@pytest.mark.parametrize("schedule", sorted(FORMULAS))
def test_a_resumed_schedule_follows_the_new_total_from_its_first_step(schedule):
    """Positioned at step k of a run extended from N to N2: from step k on, the formula over N2."""
    k, N, N2, W = 6, 10, 16, 2
    opt = optimizer()
    lrs(build_scheduler(config(schedule, N, W), opt), opt, k)  # the first run, stopped after k steps
    state = opt.state_dict()  # what the checkpoint holds: its param groups carry initial_lr (the peak)

    resumed = optimizer()
    resumed.load_state_dict(state)
    scheduler = build_scheduler(config(schedule, N2, W), resumed, last_iteration=k)
    assert scheduler.last_epoch == k and scheduler.base_lrs == [PEAK]
    got = lrs(scheduler, resumed, N2 - k)
    assert got == pytest.approx([FORMULAS[schedule](s, N2, W) for s in range(k, N2)], rel=1e-12, abs=1e-15)


def test_resuming_at_the_same_total_gives_the_same_lrs_bit_for_bit():
    """What exact resume needs: a rebuilt schedule sets the very lr the uninterrupted one would."""
    cfg = config("poly", 12, 3)
    whole = optimizer()
    want = lrs(build_scheduler(cfg, whole), whole, 12)
    first = optimizer()
    lrs(build_scheduler(cfg, first), first, 5)
    second = optimizer()
    second.load_state_dict(first.state_dict())
    assert lrs(build_scheduler(cfg, second, last_iteration=5), second, 7) == want[5:]


def test_an_unknown_schedule_is_refused_when_built():
    with pytest.raises(ValueError, match="unknown lr schedule 'step'"):
        build_scheduler(replace(config("poly", 10, 0), lr_schedule="step"), optimizer())
