"""`segment small-input-stats`: what it writes, and that eval, export-weights and averaging treat it right."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from segment.checkpoint import load_checkpoint, save_checkpoint
from segment.cli import main as segment_main
from segment.small_inputs import CHECKPOINT_KEY, bn_statistics, float_state
from segment.checkpoint import model_from_checkpoint
from train import trainer
from train.small_input_stats import DEFAULT_SIDE_FACTOR


@pytest.fixture(scope="module")
def with_stats(synth_root, tmp_path_factory):
    """A 2-iteration run of the small model, and the same checkpoint with small-input statistics."""
    from train.config import TrainConfig

    out = tmp_path_factory.mktemp("small_stats")
    cfg = TrainConfig(dataset="synthetic", data_root=str(synth_root), preset="small", crop=(64, 64),
                      scale=(0.75, 1.5), batch=4, iters=2, optimizer="adamw", lr=1e-3, lr_schedule="constant",
                      workers=0, eval_every=2, ckpt_every=2, log_every=1, out=str(out / "run"), seed=3)
    torch.set_num_threads(1)
    assert trainer.main(cfg) == 0
    src, dst = out / "run" / "last.pt", out / "stats.pt"
    assert segment_main(["small-input-stats", str(src), str(dst), "--dataset", "synthetic",
                         "--data-root", str(synth_root), "--crop", "64x128", "--batches", "2"]) == 0
    return src, dst


def test_writes_the_statistics_and_changes_no_weight(with_stats):
    src, dst = with_stats
    before, after = load_checkpoint(src), load_checkpoint(dst)
    entry = after[CHECKPOINT_KEY]
    assert CHECKPOINT_KEY not in before
    assert entry["max_pixels"] == round(64 * 128 * DEFAULT_SIDE_FACTOR ** 2)
    assert entry["notes"]["crop"] == [64, 128] and entry["notes"]["batches"] == 2
    own = bn_statistics(model_from_checkpoint(before))
    assert entry["state"].keys() == own.keys()
    assert any(not torch.allclose(entry["state"][k], own[k]) for k in own)   # measured afresh
    assert all(torch.equal(after["model"][k], v) for k, v in before["model"].items())


def _fine_tune_stand_in(src, tmp_path) -> tuple:
    """SRC with every weight scaled by 0.9: stands in for a fine-tune of SRC (other weights, same model)."""
    tuned = tmp_path / "tuned.pt"
    ckpt = load_checkpoint(src)
    model = model_from_checkpoint(ckpt)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.9)
    save_checkpoint(tuned, {**ckpt, "model": model.state_dict()})
    return tuned, ckpt, model


def test_weights_of_a_fine_tune_go_to_small_inputs_only(with_stats, synth_root, tmp_path):
    src, _ = with_stats
    tuned, ckpt, model = _fine_tune_stand_in(src, tmp_path)
    dst = tmp_path / "with_weights.pt"
    assert segment_main(["small-input-stats", str(src), str(dst), "--weights", str(tuned), "--dataset", "synthetic",
                         "--data-root", str(synth_root), "--crop", "64x128", "--batches", "2"]) == 0
    after = load_checkpoint(dst)
    entry = after[CHECKPOINT_KEY]
    weights = {k for k in float_state(model) if not k.endswith(("running_mean", "running_var"))}
    assert weights <= entry["state"].keys() and bn_statistics(model).keys() <= entry["state"].keys()
    assert all(torch.equal(entry["state"][k], float_state(model)[k]) for k in weights)
    assert all(torch.equal(after["model"][k], v) for k, v in ckpt["model"].items())   # larger inputs: SRC's own
    assert entry["notes"]["weights"]["file"] == "tuned.pt"
    halved = tmp_path / "halved.pt"
    assert segment_main(["small-input-stats", str(src), str(halved), "--weights", str(tuned), "--half", "--dataset",
                         "synthetic", "--data-root", str(synth_root), "--crop", "64x128", "--batches", "2"]) == 0
    stored = load_checkpoint(halved)[CHECKPOINT_KEY]["state"]
    assert all(stored[k].dtype == torch.float16 for k in weights)
    assert all(v.dtype == torch.float32 for k, v in stored.items() if k.endswith(("running_mean", "running_var")))


def test_blend_stores_the_weighted_mean_with_the_sources_own(with_stats, synth_root, tmp_path, capsys):
    src, _ = with_stats
    tuned, ckpt, _ = _fine_tune_stand_in(src, tmp_path)
    common = ["--weights", str(tuned), "--dataset", "synthetic", "--data-root", str(synth_root), "--crop", "64x128",
              "--batches", "2"]
    measured, blended = tmp_path / "measured.pt", tmp_path / "blended.pt"
    assert segment_main(["small-input-stats", str(src), str(measured)] + common) == 0
    assert segment_main(["small-input-stats", str(src), str(blended), "--blend", "0.25"] + common) == 0
    alone, mixed = load_checkpoint(measured)[CHECKPOINT_KEY], load_checkpoint(blended)[CHECKPOINT_KEY]
    own = float_state(model_from_checkpoint(ckpt))
    assert mixed["state"].keys() == alone["state"].keys()
    for name, value in alone["state"].items():   # weights and statistics alike
        assert torch.allclose(mixed["state"][name], 0.25 * value + 0.75 * own[name], atol=1e-6), name
    assert mixed["notes"]["blend"] == 0.25 and "blend" not in alone["notes"]
    assert all(torch.equal(load_checkpoint(blended)["model"][k], v) for k, v in ckpt["model"].items())
    for bad in ("0", "1.5"):
        assert segment_main(["small-input-stats", str(src), str(tmp_path / "x.pt"), "--blend", bad] + common) == 2
        assert "--blend" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def test_weights_of_another_model_are_refused(with_stats, synth_root, tmp_path, capsys):
    from segment.checkpoint import make_checkpoint
    from segment.model import build_model
    from segment.presets import get_preset

    src, _ = with_stats
    ckpt = load_checkpoint(src)
    other = tmp_path / "other.pt"
    config = get_preset("default").config
    save_checkpoint(other, make_checkpoint(model=build_model(replace(config, num_classes=len(ckpt["classes"]))),
                                           config=replace(config, num_classes=len(ckpt["classes"])),
                                           classes=ckpt["classes"], palette=ckpt["palette"],
                                           mean=ckpt["normalization"]["mean"], std=ckpt["normalization"]["std"]))
    status = segment_main(["small-input-stats", str(src), str(tmp_path / "x.pt"), "--weights", str(other),
                           "--dataset", "synthetic", "--data-root", str(synth_root), "--batches", "1"])
    err = capsys.readouterr().err
    assert status == 2 and "--weights" in err and "other.pt" in err, err
    assert not (tmp_path / "x.pt").exists()


def test_eval_uses_them_for_small_inputs_only(with_stats, synth_root, capsys):
    _, dst = with_stats
    common = ["eval", "--checkpoint", str(dst), "--dataset", "synthetic", "--data-root", str(synth_root),
              "--workers", "0", "--json"]
    results = {}
    for size in ("native", "256x512"):                     # 8192 pixels, then 131072 > 18432
        assert segment_main(common + ["--size", size]) == 0
        out = capsys.readouterr().out
        results[size] = json.loads(out.strip().splitlines()[-1])
    assert results["native"]["small_input_images"] == 4
    assert results["256x512"]["small_input_images"] == 0


def test_export_keeps_them_and_averaging_drops_them(with_stats, tmp_path, capsys):
    src, dst = with_stats
    assert segment_main(["export-weights", str(dst), str(tmp_path / "kept.pt")]) == 0
    kept = load_checkpoint(tmp_path / "kept.pt")[CHECKPOINT_KEY]
    assert kept["max_pixels"] == load_checkpoint(dst)[CHECKPOINT_KEY]["max_pixels"]
    assert segment_main(["export-weights", str(dst), str(tmp_path / "mean.pt"), "--average-with", str(src)]) == 0
    assert CHECKPOINT_KEY not in load_checkpoint(tmp_path / "mean.pt")


def test_bad_arguments_are_one_clear_line(with_stats, synth_root, tmp_path, capsys):
    src, _ = with_stats
    status = segment_main(["small-input-stats", str(src), str(tmp_path / "x.pt"), "--dataset", "synthetic",
                           "--data-root", str(synth_root), "--batch", "1"])
    assert status == 2 and "--batch" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()
