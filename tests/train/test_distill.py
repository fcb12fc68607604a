"""`segment train --distill-from`: the teacher's term, what it adds to a run's loss, and teachers refused."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from segment.checkpoint import load_checkpoint
from segment.errors import UserError
from train import trainer
from train.distill import distillation_loss, load_distillation


def _first_loss(cfg) -> float:
    assert trainer.main(cfg) == 0
    records = [json.loads(line) for line in (Path(cfg.out) / "metrics.jsonl").read_text().splitlines()]
    return next(r["loss"] for r in records if r["kind"] == "train" and r["iter"] == 1)


def test_the_term_is_zero_for_the_teachers_own_logits_and_trains_the_student_only():
    torch.manual_seed(0)
    teacher = torch.randn(2, 19, 8, 16)
    student = teacher.clone().requires_grad_(True)
    assert distillation_loss(student, teacher, temperature=1.0).abs().item() < 1e-6
    other = torch.randn(2, 19, 8, 16, requires_grad=True)
    loss = distillation_loss(other, teacher, temperature=2.0)
    assert loss.item() > 0.1
    loss.backward()
    assert other.grad is not None and other.grad.abs().sum() > 0 and teacher.grad is None


def test_a_teacher_of_another_output_size_is_scored_on_the_students_grid():
    torch.manual_seed(1)
    student, teacher = torch.randn(1, 19, 16, 32), torch.randn(1, 19, 8, 16)
    same = torch.nn.functional.interpolate(teacher, size=(16, 32), mode="bilinear", align_corners=False)
    assert torch.allclose(distillation_loss(student, teacher, temperature=1.0),
                          distillation_loss(student, same, temperature=1.0))


def test_a_taught_run_adds_the_weighted_term_to_its_loss(tiny_config, tmp_path):
    teacher_cfg = replace(tiny_config, iters=2, eval_every=2, seed=11, out=str(tmp_path / "teacher"))
    assert trainer.main(teacher_cfg) == 0
    teacher = str(tmp_path / "teacher" / "last.pt")
    student = replace(tiny_config, iters=1, eval_every=1, ckpt_every=1, val_split="")
    plain = _first_loss(replace(student, out=str(tmp_path / "plain")))
    once = _first_loss(replace(student, out=str(tmp_path / "w1"), distill_from=teacher, distill_weight=1.0))
    twice = _first_loss(replace(student, out=str(tmp_path / "w2"), distill_from=teacher, distill_weight=2.0))
    # The first step: the same student, batch and labels in all three runs; only the teacher's term differs.
    assert once > plain
    assert twice - plain == pytest.approx(2 * (once - plain), rel=1e-4)
    saved = load_checkpoint(tmp_path / "w2" / "last.pt")["train_config"]
    assert saved["distill_from"] == teacher and saved["distill_weight"] == 2.0


def test_a_teacher_of_other_classes_or_inputs_is_refused(tiny_config, tmp_path):
    assert trainer.main(replace(tiny_config, iters=2, eval_every=2)) == 0
    path = f"{tiny_config.out}/last.pt"
    ckpt = load_checkpoint(path)
    classes, norm = list(ckpt["classes"]), ckpt["normalization"]
    common = dict(path=path, weight=1.0, temperature=1.0, device="cpu")
    load_distillation(classes=classes, mean=norm["mean"], std=norm["std"], **common)   # the right one loads
    with pytest.raises(UserError, match="--distill-from .*classes"):
        load_distillation(classes=classes[:-1], mean=norm["mean"], std=norm["std"], **common)
    with pytest.raises(UserError, match="normalizes"):
        load_distillation(classes=classes, mean=[0.5, 0.5, 0.5], std=norm["std"], **common)
    with pytest.raises(UserError, match="above 0"):
        load_distillation(classes=classes, mean=norm["mean"], std=norm["std"], **{**common, "weight": 0.0})
    with pytest.raises(UserError, match="does not exist"):
        load_distillation(classes=classes, mean=norm["mean"], std=norm["std"], **{**common, "path": "nope.pt"})
