"""The training loop: exact resume, full checkpoints, logs, NaN stop, refusal of foreign files."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace

import pytest
import torch

from segment.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
from segment.cli import main as segment_main
from train import trainer
from train.checkpointing import load_training_checkpoint


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_resume_continues_exactly(tiny_config, tmp_path):
    """Stopped at iteration 3 and resumed (with a DataLoader worker this time) == uninterrupted."""
    whole = replace(tiny_config, out=str(tmp_path / "whole"))
    assert trainer.main(whole) == 0
    split = replace(tiny_config, out=str(tmp_path / "split"))
    assert trainer.main(split, stop_at=3) == 0
    stopped = load_training_checkpoint(tmp_path / "split" / "last.pt")
    assert stopped["iteration"] == 3
    # Resume through the CLI: the checkpoint's own config, plus one override that must not matter.
    assert segment_main(["train", "--resume", str(tmp_path / "split" / "last.pt"), "--workers", "1"]) == 0

    a = load_training_checkpoint(tmp_path / "whole" / "last.pt")
    b = load_training_checkpoint(tmp_path / "split" / "last.pt")
    assert a["iteration"] == b["iteration"] == 6
    assert a["model"].keys() == b["model"].keys()
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 6
    # The run really trained: weights moved away from the stopped state.
    assert any(not torch.equal(stopped["model"][k], b["model"][k]) for k in b["model"])
    val_a = [r["miou"] for r in read_jsonl(tmp_path / "whole" / "metrics.jsonl") if r["kind"] == "val"]
    val_b = [r["miou"] for r in read_jsonl(tmp_path / "split" / "metrics.jsonl") if r["kind"] == "val"]
    assert val_a == val_b and len(val_a) == 2


def test_resume_with_more_iters_follows_the_new_schedule(tiny_config, tmp_path):
    """How the shipped weights were made: a run of 6 iterations stopped at 4, resumed with --iters 8.

    The lrs are the poly schedule of docs/train.md ("Learning-rate schedules"), written out here:
    over 6 iterations up to the stop, over 8 from the first resumed step on. The weights continue
    from the checkpoint: iteration 5's loss (the weights after step 4, on batch 5) is the
    uninterrupted run's.
    """
    cfg = replace(tiny_config, iters=6, warmup_iters=2, lr_schedule="poly", val_split="", log_every=1)
    peak, warmup = cfg.lr, cfg.warmup_iters

    def poly(step, iters):  # 0-based step; the lr logged at iteration step + 1
        if step < warmup:
            return peak * (0.01 + 0.99 * step / warmup)
        return peak * (1 - min(1.0, (step - warmup) / (iters - warmup))) ** 0.9

    assert trainer.main(replace(cfg, out=str(tmp_path / "whole"))) == 0
    assert trainer.main(replace(cfg, out=str(tmp_path / "ext")), stop_at=4) == 0
    stopped = load_training_checkpoint(tmp_path / "ext" / "last.pt")
    assert segment_main(["train", "--resume", str(tmp_path / "ext" / "last.pt"), "--iters", "8"]) == 0

    whole = {r["iter"]: r for r in read_jsonl(tmp_path / "whole" / "metrics.jsonl")}
    ext = {r["iter"]: r for r in read_jsonl(tmp_path / "ext" / "metrics.jsonl")}
    assert list(whole) == [1, 2, 3, 4, 5, 6] and list(ext) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [whole[i]["lr"] for i in whole] == pytest.approx([poly(i - 1, 6) for i in whole], rel=1e-12)
    assert [ext[i]["lr"] for i in (1, 2, 3, 4)] == pytest.approx([poly(i - 1, 6) for i in (1, 2, 3, 4)], rel=1e-12)
    assert [ext[i]["lr"] for i in (5, 6, 7, 8)] == pytest.approx([poly(i - 1, 8) for i in (5, 6, 7, 8)], rel=1e-12)
    # By hand: steps 4..7 of 8 with 2 warm-up steps are 2/6, 3/6, 4/6, 5/6 of the way down.
    assert [ext[i]["lr"] for i in (5, 6, 7, 8)] == pytest.approx(
        [peak * (4 / 6) ** 0.9, peak * (3 / 6) ** 0.9, peak * (2 / 6) ** 0.9, peak * (1 / 6) ** 0.9], rel=1e-12)

    assert [ext[i]["loss"] for i in (1, 2, 3, 4, 5)] == [whole[i]["loss"] for i in (1, 2, 3, 4, 5)]
    assert ext[6]["loss"] != whole[6]["loss"]  # step 5 ran at the new schedule's lr, not the old one's
    done = load_training_checkpoint(tmp_path / "ext" / "last.pt")
    assert done["iteration"] == 8 and done["scheduler"]["last_epoch"] == 8 and done["train_config"]["iters"] == 8
    assert any(not torch.equal(stopped["model"][k], done["model"][k]) for k in done["model"])


def test_checkpoint_holds_everything_and_loads_safely(tiny_config):
    assert trainer.main(replace(tiny_config, iters=2, eval_every=2)) == 0
    out = tiny_config.out
    raw = torch.load(f"{out}/last.pt", weights_only=True)  # plain tensors/lists/dicts only
    for key in ("model", "model_config", "classes", "palette", "normalization", "optimizer", "scheduler",
                "scaler", "iteration", "rng", "metrics", "train_config", "best", "command"):
        assert key in raw, key
    assert raw["train_config"]["preset"] == "small" and raw["iteration"] == 2
    assert set(raw["rng"]) == {"python", "numpy", "torch", "cuda"}
    assert 0.0 <= raw["metrics"]["miou"] <= 1.0
    model = model_from_checkpoint(load_checkpoint(f"{out}/best.pt"))
    assert model(torch.zeros(1, 3, 64, 128)).shape == (1, 19, 64, 128)


def test_logs_jsonl_tensorboard_and_final_table(tiny_config, capsys):
    assert trainer.main(tiny_config) == 0
    from pathlib import Path

    out = Path(tiny_config.out)
    records = read_jsonl(out / "metrics.jsonl")
    train = [r for r in records if r["kind"] == "train"]
    val = [r for r in records if r["kind"] == "val"]
    assert [r["iter"] for r in train] == list(range(1, 7))
    assert all(r["lr"] > 0 and r["images_per_s"] > 0 and r["loss"] > 0 for r in train)
    assert [r["iter"] for r in val] == [3, 6] and len(val[0]["per_class"]) == 19
    assert list((out / "tb").glob("events.out.tfevents.*"))
    final = json.loads((out / "final.json").read_text())
    assert final["iter"] == 6 and final["miou"] == val[-1]["miou"]
    err = capsys.readouterr().err
    assert "mIoU" in err and "traffic sign" in err  # the per-class table


def test_cpu_training_learns(tiny_config):
    """Thirty steps on synthetic scenes: the training loss falls by more than a third."""
    cfg = replace(tiny_config, iters=30, lr=5e-3, lr_schedule="onecycle", eval_every=30, ckpt_every=30,
                  crop=(64, 128), log_every=5)
    assert trainer.main(cfg) == 0
    from pathlib import Path

    records = read_jsonl(Path(cfg.out) / "metrics.jsonl")
    losses = [r["loss"] for r in records if r["kind"] == "train"]
    assert losses[-1] < 0.65 * losses[0]


class NaNAfter(torch.nn.Module):
    def __init__(self, inner, after):
        super().__init__()
        self.inner, self.after, self.calls = inner, after, 0

    def forward(self, logits, target):
        self.calls += 1
        loss = self.inner(logits, target)
        return loss * float("nan") if self.calls > self.after else loss


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_config, monkeypatch):
    import train.losses

    real = train.losses.build_loss
    monkeypatch.setattr(train.losses, "build_loss", lambda name, **kw: NaNAfter(real(name, **kw), after=4))
    cfg = replace(tiny_config, iters=10, eval_every=100, ckpt_every=2)
    with pytest.raises(trainer.TrainingDiverged, match=r"loss became nan at iteration 5.*last good checkpoint is"):
        trainer.main(cfg)
    assert trainer.TrainingDiverged.is_user_error
    kept = load_training_checkpoint(f"{cfg.out}/last.pt")
    assert kept["iteration"] == 4
    assert all(torch.isfinite(v).all() for v in kept["model"].values() if v.is_floating_point())


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def test_foreign_and_unsafe_files_are_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"model": _Evil()}))
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(CheckpointError, match="unsafe pickle"):
        load_checkpoint(evil)
    with pytest.raises(CheckpointError, match="not a checkpoint of this project"):
        load_checkpoint(foreign)
    assert not (tmp_path / "PWNED").exists()
    for path in (evil, foreign):
        assert segment_main(["train", "--resume", str(path)]) == 2
        assert segment_main(["eval", "--checkpoint", str(path), "--dataset", "camvid", "--data-root", "x"]) == 2
    err = capsys.readouterr().err
    assert "evil.pt" in err and "foreign.pt" in err and "Traceback" not in err
    assert not (tmp_path / "PWNED").exists()


def test_weights_only_checkpoint_cannot_be_resumed(tiny_config, tmp_path):
    from train.checkpointing import export_weights

    assert trainer.main(replace(tiny_config, iters=2, eval_every=2)) == 0
    small = tmp_path / "small.pt"
    export_weights(f"{tiny_config.out}/last.pt", small)
    with pytest.raises(CheckpointError, match="weights only"):
        load_training_checkpoint(small)


def test_bf16_autocast_and_channels_last_run(tiny_config):
    cfg = replace(tiny_config, iters=2, eval_every=2, amp="bf16", channels_last=True)
    assert trainer.main(cfg) == 0
    losses = [r["loss"] for r in read_jsonl_path(cfg.out)]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))


def test_fp16_on_cpu_is_refused(tiny_config):
    from segment.errors import UserError

    with pytest.raises(UserError, match="fp16 needs a GPU"):
        trainer.main(replace(tiny_config, amp="fp16", device="cpu"))


def read_jsonl_path(out):
    from pathlib import Path

    return [r for r in read_jsonl(Path(out) / "metrics.jsonl") if r["kind"] == "train"]
