"""train.distributed.resolve_device: which GPU a process takes, and a clear error when it has none."""

from __future__ import annotations

import pytest
import torch

from segment.errors import UserError
from train.distributed import resolve_device


@pytest.fixture
def one_gpu(monkeypatch):
    """Pretend this machine has exactly one CUDA device (nothing is allocated on it)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    for var in ("LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)


def test_each_torchrun_process_takes_the_gpu_of_its_local_rank(one_gpu, monkeypatch):
    assert resolve_device("cuda") == torch.device("cuda", 0)
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert resolve_device("auto") == torch.device("cuda", 0)


def test_more_processes_than_gpus_is_a_clear_error(one_gpu, monkeypatch):
    # Seen on a one-GPU H100 machine: torchrun --nproc_per_node 2 made rank 1 die in
    # torch.cuda.set_device with a bare "CUDA error: invalid device ordinal".
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(UserError, match=r"cuda:1 does not exist: this machine has 1 GPU\(s\).*--nproc_per_node 1"):
        resolve_device("auto")


def test_a_missing_gpu_index_is_a_clear_error(one_gpu):
    with pytest.raises(UserError, match=r"cuda:3 does not exist.*choose cuda:0..cuda:0"):
        resolve_device("cuda:3")
