"""Weights-only export, `segment eval` options and errors, and the shipped demo checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from dataclasses import replace

import pytest
import torch

from segment.checkpoint import load_checkpoint, model_from_checkpoint
from segment.cli import main as segment_main
from train import trainer
from train.export_weights import main as export_main


@pytest.fixture
def short_run(tiny_config):
    assert trainer.main(replace(tiny_config, iters=2, eval_every=2)) == 0
    return tiny_config.out


def test_export_keeps_weights_and_metadata_only(short_run, tmp_path):
    src, dst = f"{short_run}/last.pt", tmp_path / "small.pt"
    assert export_main([src, str(dst), "--note", "wall_time_h=0.5"]) == 0
    full, small = load_checkpoint(src), load_checkpoint(dst)
    assert "optimizer" not in small and "rng" not in small and small["trained"] == {"wall_time_h": 0.5}
    assert small["metrics"]["miou"] == full["metrics"]["miou"] and small["train_config"] == full["train_config"]
    assert dst.stat().st_size < 0.6 * Path(src).stat().st_size
    x = torch.randn(1, 3, 64, 128)
    assert torch.equal(model_from_checkpoint(full)(x), model_from_checkpoint(small)(x))


def test_export_weights_is_a_segment_subcommand(short_run, tmp_path, capsys):
    # 'segment export-weights' and its alias 'python -m train.export_weights' are one command.
    src = f"{short_run}/last.pt"
    assert segment_main(["export-weights", src, str(tmp_path / "a.pt"), "--note", "gpu=none"]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'a.pt'}: ")
    assert load_checkpoint(tmp_path / "a.pt")["trained"] == {"gpu": "none"}
    with pytest.raises(SystemExit) as exc:
        segment_main(["export-weights", src, str(tmp_path / "b.pt"), "--note", "no-equals"])
    assert exc.value.code == 2 and "expected KEY=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "b.pt").exists()


def test_eval_sizes_and_bad_size(short_run, synth_root, capsys):
    common = ["eval", "--checkpoint", f"{short_run}/last.pt", "--dataset", "synthetic", "--data-root",
              str(synth_root), "--workers", "0", "--json"]
    assert segment_main(common + ["--size", "32x64"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["images"] == 4 and 0 <= result["pixel_acc"] <= 1
    assert segment_main(common + ["--size", "big"]) == 2
    assert "expected native, half, full or HxW" in capsys.readouterr().err


def test_eval_of_missing_dataset_is_one_clear_line(short_run, tmp_path, capsys):
    status = segment_main(["eval", "--checkpoint", f"{short_run}/last.pt", "--dataset", "camvid",
                           "--data-root", str(tmp_path / "nowhere")])
    assert status == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "Traceback" not in err


def test_shipped_demo_checkpoint():
    """The bundled CamVid weights: small, inference-only, our format, with their training provenance."""
    from segment.bundled import default_checkpoint
    from segment.presets import get_preset

    path = default_checkpoint()
    assert path.stat().st_size < 10e6
    ckpt = load_checkpoint(path)
    assert "optimizer" not in ckpt and "rng" not in ckpt
    assert all(v.dtype == torch.float32 for v in ckpt["model"].values() if v.is_floating_point())
    assert ckpt["label_space"]["name"] == "camvid" and len(ckpt["label_space"]["eval_train_ids"]) == 11
    assert len(ckpt["classes"]) == 19
    # Trained on train+val (no validation set, so no metrics): the provenance says what it saw.
    assert "train+val" in ckpt["trained"]["data"] and ckpt["iteration"] == ckpt["train_config"]["iters"]
    assert ckpt["train_config"]["train_split"] == "train+val"
    default = get_preset("default").config
    config = ckpt["model_config"]
    assert (config["backbone"], config["rf2"], config["head"], config["head_channels"]) == (
        default.backbone, default.rf2, default.head, default.head_channels)
    model = model_from_checkpoint(ckpt)
    assert model(torch.zeros(1, 3, 64, 96)).shape == (1, 19, 64, 96)


def test_export_can_average_two_fine_tunes(short_run, tmp_path, capsys):
    src = f"{short_run}/last.pt"
    other = load_checkpoint(src)
    other["model"] = {k: (v + 1.0 if v.is_floating_point() else v + 5) for k, v in other["model"].items()}
    torch.save(other, tmp_path / "other.pt")
    dst = tmp_path / "mean.pt"
    assert segment_main(["export-weights", src, str(dst), "--average-with", str(tmp_path / "other.pt"),
                         "--src-weight", "0.75"]) == 0
    mean, first = load_checkpoint(dst)["model"], load_checkpoint(src)["model"]
    for k, v in first.items():
        if v.is_floating_point():
            assert torch.allclose(mean[k], v + 0.25), k   # 0.75 * v + 0.25 * (v + 1)
        else:
            assert torch.equal(mean[k], v), k              # counters are the source's, not averaged
    capsys.readouterr()
    # Another model, a weight outside [0, 1], or a weight without a second checkpoint: one clear line, no file.
    other["model_config"] = {**other["model_config"], "num_classes": 7}
    torch.save(other, tmp_path / "other.pt")
    for extra in (["--average-with", str(tmp_path / "other.pt")],
                  ["--average-with", src, "--src-weight", "1.5"], ["--src-weight", "0.3"]):
        assert segment_main(["export-weights", src, str(tmp_path / "bad.pt"), *extra]) == 2
        assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "bad.pt").exists()
