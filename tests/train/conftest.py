"""Fixtures for the trainer tests: a tiny synthetic Cityscapes tree and a tiny, fast run config."""

from __future__ import annotations

import pytest
import torch

from data.synthetic import write_synthetic_cityscapes
from train.config import TrainConfig

SIZE = (64, 128)


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread per test: these models are tiny, and on a shared 2-core machine two
    OpenMP threads spin-wait on each other (measured 20-40x slower here under load)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    """Read-only: 8 train + 4 val synthetic street scenes at 64x128."""
    root = tmp_path_factory.mktemp("train_synth") / "cs"
    write_synthetic_cityscapes(out=root, n=8, size=SIZE, seed=1, splits=("train",))
    write_synthetic_cityscapes(out=root, n=4, size=SIZE, seed=1, splits=("val",))
    return root


@pytest.fixture
def tiny_config(synth_root, tmp_path) -> TrainConfig:
    """The small model on 64x64 crops, batch 4: a step takes a fraction of a second on 2 cores."""
    return TrainConfig(
        dataset="synthetic", data_root=str(synth_root), preset="small", crop=(64, 64), scale=(0.75, 1.5),
        batch=4, iters=6, optimizer="adamw", lr=1e-3, weight_decay=1e-2, lr_schedule="poly", warmup_iters=2,
        workers=0, eval_every=3, ckpt_every=2, log_every=1, out=str(tmp_path / "run"), seed=7, bn_recalib_batches=1,
    )


@pytest.fixture(scope="session")
def trained_run(synth_root, tmp_path_factory):
    """A finished 30-iteration run of the small model (its folder): predicts several classes."""
    from train.trainer import main

    out = tmp_path_factory.mktemp("trained") / "run"
    cfg = TrainConfig(
        dataset="synthetic", data_root=str(synth_root), preset="small", crop=(64, 128), scale=(0.75, 1.25),
        batch=4, iters=30, optimizer="adamw", lr=5e-3, weight_decay=1e-2, lr_schedule="onecycle",
        workers=0, eval_every=30, ckpt_every=30, log_every=5, out=str(out), seed=0,
    )
    assert main(cfg) == 0
    return out
