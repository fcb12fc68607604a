"""--init-weights (fine-tune from a checkpoint) and --extra-train (concatenated training sets)."""

from __future__ import annotations

import argparse
from dataclasses import replace

import pytest
import torch

from data.build import build_dataset
from data.labels import LabelSpace
from data.synthetic import write_synthetic_cityscapes
from data.transforms import train_transform
from segment.errors import UserError
from train import trainer
from train.checkpointing import load_training_checkpoint
from train.cli import add_arguments, config_from_args
from train.concat import ConcatTrainSet, parse_extra
from train.losses import enet_class_weights
from train.sampling import SeededDataset


@pytest.fixture(scope="module")
def other_root(tmp_path_factory):
    """A second synthetic training set (other scenes than synth_root's)."""
    root = tmp_path_factory.mktemp("other_synth") / "cs"
    write_synthetic_cityscapes(out=root, n=4, size=(64, 128), seed=5, splits=("train",))
    return root


def test_concat_keeps_transform_label_space_and_class_weights(synth_root, other_root):
    transform = train_transform(crop=(64, 64), scale=(0.75, 1.5), hflip=True)
    a = build_dataset(name="synthetic", root=synth_root, split="train", transform=transform)
    b = build_dataset(name="synthetic", root=other_root, split="train", transform=transform)
    both = ConcatTrainSet(parts=[a, b])
    assert len(both) == len(a) + len(b) == 12
    assert both.transform is transform and both.label_space == a.label_space
    # SeededDataset reseeds the shared transform: item 8 of the concatenation is b's item 0, same augmentation.
    seeded, seeded_b = SeededDataset(both), SeededDataset(b)
    img, mask = seeded[(len(a), 123)]
    img_b, mask_b = seeded_b[(0, 123)]
    assert torch.equal(img, img_b) and torch.equal(mask, mask_b)
    img2, _ = seeded[(len(a), 124)]
    assert not torch.equal(img, img2)  # another seed, another augmentation
    # ENet weights count the labels of every part: same as one dataset listing all the files.
    merged = build_dataset(name="synthetic", root=synth_root, split="train", transform=transform)
    merged.files = a.files + b.files
    assert torch.allclose(enet_class_weights(both, num_classes=19), enet_class_weights(merged, num_classes=19))
    assert not torch.allclose(enet_class_weights(both, num_classes=19), enet_class_weights(a, num_classes=19))


def test_concat_refuses_another_label_space(synth_root):
    a = build_dataset(name="synthetic", root=synth_root, split="train", transform=train_transform(crop=(64, 64)))

    class Other(torch.utils.data.Dataset):
        label_space = LabelSpace(name="mine", classes=("a", "b"), palette=((0, 0, 0), (1, 1, 1)), eval_train_ids=(0, 1))
        transform, files = a.transform, []

        def __len__(self):
            return 1

    with pytest.raises(UserError, match="label space"):
        ConcatTrainSet(parts=[a, Other()])
    with pytest.raises(UserError, match="NAME:ROOT"):
        parse_extra("runs/synth")


def test_cli_flags_fill_the_config():
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--recipe", "cpu", "--init-weights", "w.pt",
                         "--extra-train", "synthetic:a", "--extra-train", "folder:b:c"])
    cfg = config_from_args(args)
    assert cfg.init_weights == "w.pt" and cfg.extra_train == ("synthetic:a", "folder:b:c")
    assert parse_extra("folder:b:c") == ("folder", "b:c")
    assert config_from_args(p.parse_args(["--recipe", "cpu"])).extra_train == ()


def test_init_weights_fine_tunes_with_a_fresh_schedule(tiny_config, trained_run, other_root, tmp_path):
    start = load_training_checkpoint(trained_run / "last.pt")
    ft = replace(tiny_config, iters=2, eval_every=2, bn_recalib_batches=0, init_weights=str(trained_run / "last.pt"),
                 extra_train=(f"synthetic:{other_root}",), out=str(tmp_path / "ft"))
    assert trainer.main(ft) == 0
    scratch = replace(ft, init_weights="", out=str(tmp_path / "scratch"))
    assert trainer.main(scratch) == 0
    tuned = load_training_checkpoint(tmp_path / "ft" / "last.pt")
    fresh = load_training_checkpoint(tmp_path / "scratch" / "last.pt")
    assert tuned["iteration"] == 2 and tuned["scheduler"]["last_epoch"] == 2  # not the source's 30

    def dist(x):
        return sum((x["model"][k].float() - start["model"][k].float()).norm() for k in start["model"]
                   if "running_" not in k and start["model"][k].is_floating_point())  # weights, not BN statistics

    assert dist(tuned) < 0.2 * dist(fresh)  # started from the trained weights, moved only a little
    assert tuned["train_config"]["init_weights"] == str(trained_run / "last.pt")


def test_init_weights_refuses_another_model(tiny_config, trained_run):
    bad = replace(tiny_config, preset="default", init_weights=str(trained_run / "last.pt"))
    with pytest.raises(UserError, match="model differs"):
        trainer.main(bad)


def test_init_weights_from_a_checkpoint_of_the_previous_architecture(tiny_config, trained_run, tmp_path):
    """A checkpoint written before the reference-fidelity fields (legacy torchvision conventions,
    no gate bias) starts a fine-tune of today's architecture: every weight it has is loaded."""
    from segment.checkpoint import load_checkpoint, save_checkpoint
    from segment.config import legacy_fields

    ckpt = load_checkpoint(trained_run / "last.pt")
    ckpt["model_config"] = {k: v for k, v in ckpt["model_config"].items() if k not in legacy_fields("x")}
    ckpt["model"] = {k: v for k, v in ckpt["model"].items() if k != "head.scale.0.bias"}
    ckpt["version"] = 1
    old = tmp_path / "old.pt"
    save_checkpoint(old, ckpt)
    from segment.model import build_model

    cfg = replace(tiny_config, init_weights=str(old))

    model_config = trainer.build_model_config(cfg, num_classes=len(ckpt["classes"]))
    model = build_model(model_config)
    trainer.load_init_weights(model, path=str(old), model_config=model_config, classes=ckpt["classes"])
    state = model.state_dict()
    for name, value in ckpt["model"].items():
        assert torch.equal(state[name], value), name
    # A checkpoint whose weights do not fit (a tensor of another shape) is refused by name.
    bad = dict(ckpt, model={**ckpt["model"], "head.low_classifier.weight": torch.zeros(1)})
    save_checkpoint(tmp_path / "bad.pt", bad)
    with pytest.raises(Exception, match="low_classifier"):
        trainer.load_init_weights(build_model(model_config), path=str(tmp_path / "bad.pt"),
                                  model_config=model_config, classes=ckpt["classes"])
