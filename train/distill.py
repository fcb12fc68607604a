"""Knowledge distillation: a frozen teacher's per-pixel class probabilities as a second target.

``segment train --distill-from TEACHER.pt`` adds ``--distill-weight`` x the
pixel-wise KL divergence from the teacher's softened probabilities to the
student's (Hinton et al., 2015, "Distilling the Knowledge in a Neural
Network"; pixel-wise for segmentation as in Liu et al., 2019, "Structured
Knowledge Distillation for Semantic Segmentation") to the loss. The labels
say which class a pixel is; the teacher's probabilities also say which
classes it resembles, and they cover the void pixels the labels ignore. What
it measured for the small model taught by the large one: docs/train.md.

The teacher runs as the app runs it: a checkpoint with a small-input state
(``segment.small_inputs``) gives small crops that state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from segment.errors import UserError
from segment.normalization import same_normalization


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, *, temperature: float) -> torch.Tensor:
    """KL(teacher || student) per pixel at ``temperature``, summed over classes, averaged over pixels, times
    temperature^2 (so that its gradient's scale does not change with the temperature, as in Hinton et al.)."""
    if teacher.shape[-2:] != student.shape[-2:]:  # a teacher of another output size: scored on the student's grid
        teacher = F.interpolate(teacher, size=student.shape[-2:], mode="bilinear", align_corners=False)
    t = temperature
    per_pixel = F.kl_div(F.log_softmax(student / t, dim=1), F.log_softmax(teacher / t, dim=1), log_target=True,
                         reduction="none").sum(dim=1)
    return per_pixel.mean() * t * t


@dataclass
class Distillation:
    """The teacher and the weight and temperature of its term in the loss."""

    teacher: object  # segment.small_inputs.SizedModel: the model a crop's size runs
    weight: float
    temperature: float

    def loss(self, images: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            teacher_logits = self.teacher.for_input(tuple(images.shape[-2:]))(images).float()
        return self.weight * distillation_loss(student_logits, teacher_logits, temperature=self.temperature)


def load_distillation(*, path: str, weight: float, temperature: float, classes: list[str],
                      mean: list[float], std: list[float], device) -> Distillation:
    """The teacher in ``path``, refused unless it predicts the same classes from the same normalized input."""
    from segment.checkpoint import load_checkpoint, model_from_checkpoint
    from segment.small_inputs import SizedModel, SmallInputState

    if weight <= 0 or temperature <= 0:
        raise UserError(f"--distill-weight ({weight}) and --distill-temperature ({temperature}) must be above 0")
    ckpt = load_checkpoint(path)  # a missing or damaged file: a CheckpointError that names it
    if list(ckpt["classes"]) != list(classes):
        raise UserError(f"--distill-from {path}: its classes ({len(ckpt['classes'])}) are not this run's "
                        f"({len(classes)}); a teacher must predict the same classes in the same order")
    norm = ckpt.get("normalization", {})
    if not same_normalization(norm, mean, std):
        raise UserError(f"--distill-from {path}: it normalizes its input differently ({norm}); it would see "
                        "other inputs than the student")
    model = model_from_checkpoint(ckpt).to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return Distillation(teacher=SizedModel(model=model, small=SmallInputState.from_checkpoint(ckpt)),
                        weight=weight, temperature=temperature)

