"""--data-on-device: the trainer with its training set held and augmented on the device (here the CPU)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch

from data.device_augment import DeviceAugment, DeviceDataset
from segment.cli import main as segment_main
from train import trainer
from train.checkpointing import load_training_checkpoint
from train.device_data import DeviceLoader
from train.sampling import EpochSampler


def train_losses(out) -> dict[int, float]:
    records = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    return {r["iter"]: r["loss"] for r in records if r["kind"] == "train"}


def test_data_on_device_trains_checkpoints_and_resumes_exactly(tiny_config, tmp_path):
    """As test_trainer.py::test_resume_continues_exactly: stopped at 3 and resumed == uninterrupted."""
    cfg = replace(tiny_config, data_on_device=True)
    assert trainer.main(replace(cfg, out=str(tmp_path / "whole"))) == 0
    assert trainer.main(replace(cfg, out=str(tmp_path / "split")), stop_at=3) == 0
    assert load_training_checkpoint(tmp_path / "split" / "last.pt")["iteration"] == 3
    assert segment_main(["train", "--resume", str(tmp_path / "split" / "last.pt")]) == 0

    a = load_training_checkpoint(tmp_path / "whole" / "last.pt")
    b = load_training_checkpoint(tmp_path / "split" / "last.pt")
    assert a["iteration"] == b["iteration"] == 6 and b["train_config"]["data_on_device"] is True
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    whole, split = train_losses(tmp_path / "whole"), train_losses(tmp_path / "split")
    assert list(whole) == list(split) == [1, 2, 3, 4, 5, 6]
    assert whole == split and all(map(torch.isfinite, torch.tensor(list(whole.values()))))
    # Not the DataLoader's stream: the same run on the normal path sees other crops.
    assert trainer.main(replace(tiny_config, out=str(tmp_path / "loader"), iters=1)) == 0
    assert train_losses(tmp_path / "loader")[1] != whole[1]


def test_cli_flag_sets_the_option():
    import argparse

    from train.cli import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args(["--data-on-device"])).data_on_device is True
    assert config_from_args(parser.parse_args([])).data_on_device is False


def test_a_global_batch_is_the_same_for_any_number_of_processes():
    """Each rank draws its own share of the epoch's global batches, as EpochSampler shares them."""
    images = [torch.randint(0, 256, (3, 40, 60), dtype=torch.uint8) for _ in range(8)]
    labels = [torch.randint(0, 19, (40, 60), dtype=torch.uint8) for _ in range(8)]
    data, augment = DeviceDataset(images, labels), DeviceAugment(crop=(32, 32), scale=(0.5, 2.0))

    def batches(rank, world_size):
        sampler = EpochSampler(size=8, global_batch=4, rank=rank, world_size=world_size, seed=5)
        sampler.set_epoch(3, 1)  # a resumed epoch: from its second batch
        return list(DeviceLoader(data, augment, sampler, device=torch.device("cpu")))

    one = batches(0, 1)
    two = [batches(0, 2), batches(1, 2)]
    assert len(one) == 1 and all(len(b) == 1 for b in two)
    for part in (0, 1):  # images, then labels
        assert torch.equal(one[0][part], torch.cat([two[0][0][part], two[1][0][part]]))


def test_concatenated_sets_load_raw_pairs_from_their_parts(synth_root):
    """--extra-train sets are decoded onto the device through ConcatTrainSet.load."""
    import numpy as np

    from data.cityscapes import CityscapesDataset
    from train.concat import ConcatTrainSet

    first = CityscapesDataset(root=synth_root, split="train")
    second = CityscapesDataset(root=synth_root, split="val", transform=first.transform)
    both = ConcatTrainSet(parts=[first, second])
    for index, (part, inner) in {0: (first, 0), 7: (first, 7), 8: (second, 0), 11: (second, 3)}.items():
        assert all(np.array_equal(x, y) for x, y in zip(both.load(index), part.load(inner)))


def test_photometric_is_refused_on_the_device_path(tiny_config, tmp_path):
    """The colour augmentation exists in the CPU pipeline only: asking for both is a clear error."""
    import pytest

    from segment.errors import UserError

    cfg = replace(tiny_config, data_on_device=True, photometric=True, out=str(tmp_path / "run"))
    with pytest.raises(UserError, match="--photometric runs in the CPU data pipeline only"):
        trainer.main(cfg)


def test_photometric_flag_sets_the_option():
    import argparse

    from train.cli import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args(["--photometric"])).photometric is True
    assert config_from_args(parser.parse_args([])).photometric is False
