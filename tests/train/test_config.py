"""TrainConfig: defaults, and what a checkpoint's stored config resumes as."""

import argparse

from train.config import TrainConfig


def test_crops_are_padded_with_the_mean_colour_unless_a_run_said_otherwise():
    """New runs pad as DeepLab does (its mean pixel); a run saved before the option existed
    padded with black, and resuming it keeps that, so its data do not change mid-run."""
    assert TrainConfig().pad_fill == "mean"
    assert TrainConfig.from_dict(TrainConfig().to_dict()).pad_fill == "mean"
    before = {k: v for k, v in TrainConfig().to_dict().items() if k != "pad_fill"}
    assert TrainConfig.from_dict(before).pad_fill == "black"
    assert TrainConfig.from_dict({**before, "pad_fill": "mean"}).pad_fill == "mean"


def test_pad_fill_flag_sets_the_option():
    from train.cli import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args(["--pad-fill", "black"])).pad_fill == "black"
    assert config_from_args(parser.parse_args([])).pad_fill == "mean"


def test_distillation_flags_set_the_options():
    from train.cli import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cfg = config_from_args(parser.parse_args(["--distill-from", "t.pt", "--distill-weight", "0.5",
                                              "--distill-temperature", "2"]))
    assert (cfg.distill_from, cfg.distill_weight, cfg.distill_temperature) == ("t.pt", 0.5, 2.0)
    assert config_from_args(parser.parse_args([])).distill_from == ""
