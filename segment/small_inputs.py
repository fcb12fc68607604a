"""A second set of BatchNorm statistics for small inputs, chosen by the input's pixel count.

Why: a network's BatchNorm statistics are those of the scales it was trained
at. The bundled models' last stages drew scales 1.25-5.0 of a CamVid frame
(the sizes at which the app's half and full budgets show a street photo), so
at a frame's own 360x480 the statistics are those of enlarged images, and
native size scored 8 points below half. Statistics measured on frames at
their own scale, the train-test resolution fix of Touvron et al. (2019,
"FixRes"), give native size back 2.3 points on CamVid val without touching
any other size: inputs above ``max_pixels`` keep the model's own statistics.
Nothing else changes (weights, graph, speed); a compiled backend is built per
shape anyway, so the statistics fold into the small shapes' graphs.

A checkpoint carries them under ``CHECKPOINT_KEY`` (written by ``segment
small-input-stats``); ``SizedModel`` gives the model an input size runs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

from segment.batchnorm import batchnorm_layers

CHECKPOINT_KEY = "small_input_bn"
STAT_NAMES = ("running_mean", "running_var")


def bn_statistics(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every BatchNorm layer's running mean and variance, by state-dict name."""
    norms = {id(m) for m in batchnorm_layers(model)}
    return {f"{name}.{stat}": getattr(m, stat).detach().clone()
            for name, m in model.named_modules() if id(m) in norms for stat in STAT_NAMES}


@dataclass(frozen=True)
class SmallInputStats:
    """BN statistics for inputs of at most ``max_pixels`` pixels (run shape, padding included)."""

    max_pixels: int
    stats: dict[str, torch.Tensor]
    notes: dict = field(default_factory=dict)  # how they were measured (data, scales, batches)

    def applies(self, hw: tuple[int, int]) -> bool:
        return hw[0] * hw[1] <= self.max_pixels

    def apply(self, model: torch.nn.Module) -> torch.nn.Module:
        """A copy of ``model`` with these statistics; ``model`` itself is left as it is."""
        own = bn_statistics(model)
        if own.keys() != self.stats.keys():
            missing = sorted(own.keys() - self.stats.keys())[:3]
            raise ValueError(f"the small-input statistics do not fit this model (layers {missing} ...); "
                             "measure them again for these weights with 'segment small-input-stats'")
        small = copy.deepcopy(model)
        with torch.no_grad():
            for name, value in self.stats.items():
                small.get_buffer(name).copy_(value)
        return small.eval()

    def to_checkpoint(self) -> dict:
        return {"max_pixels": int(self.max_pixels), "stats": {k: v.float().contiguous() for k, v in self.stats.items()},
                "notes": dict(self.notes)}

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> "SmallInputStats | None":
        entry = ckpt.get(CHECKPOINT_KEY)
        if entry is None:
            return None
        return cls(max_pixels=int(entry["max_pixels"]), stats=dict(entry["stats"]), notes=dict(entry.get("notes", {})))


class SizedModel:
    """The model an input size runs: ``model``, or for small inputs its copy with ``small``'s statistics."""

    def __init__(self, *, model: torch.nn.Module, small: SmallInputStats | None) -> None:
        self.model = model
        self.small = small
        self._small_model: tuple[int, torch.nn.Module] | None = None  # (id of the model it copies, the copy)

    def uses_small(self, hw: tuple[int, int]) -> bool:
        return self.small is not None and self.small.applies(hw)

    def for_input(self, hw: tuple[int, int]) -> torch.nn.Module:
        return self._small() if self.uses_small(hw) else self.model

    def models(self) -> list[torch.nn.Module]:
        """The model, then its small-input copy if there is one."""
        return [self.model] + ([self._small()] if self.small is not None else [])

    def _small(self) -> torch.nn.Module:
        # Rebuilt when the model is replaced (the benchmark shares one model between predictors).
        if self._small_model is None or self._small_model[0] != id(self.model):
            self._small_model = (id(self.model), self.small.apply(self.model))
        return self._small_model[1]
