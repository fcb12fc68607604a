"""A second state for small inputs (BatchNorm statistics, and optionally weights), chosen by pixel count.

Why: a network's BatchNorm statistics are those of the scales it was trained
at. The bundled models' last stages drew scales 1.25-5.0 of a CamVid frame
(the sizes at which the app's half and full budgets show a street photo), so
at a frame's own 360x480 the statistics are those of enlarged images, and
native size scored 8 points below half. Statistics measured on frames at
their own scale, the train-test resolution fix of Touvron et al. (2019,
"FixRes"), give native size back 2.3 points on CamVid val without touching
any other size: inputs above ``max_pixels`` keep the model's own state. A
short fine-tune of the whole network on frames near their own size goes
further (docs/train.md, "Small-input weights"); its weights then ride along
in the same entry, and the large inputs keep theirs.

A checkpoint carries the entry under ``CHECKPOINT_KEY`` (written by ``segment
small-input-stats``); ``SizedModel`` gives the model an input size runs. A
compiled backend is built per shape anyway, so the small state costs no
speed: it folds into the small shapes' graphs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

from segment.batchnorm import batchnorm_layers

CHECKPOINT_KEY = "small_input"
LEGACY_KEY = "small_input_bn"  # the earlier form: {"max_pixels", "stats" (BN statistics only), "notes"}
ENTRY_KEYS = (CHECKPOINT_KEY, LEGACY_KEY)  # every checkpoint key that holds a small-input state
STAT_NAMES = ("running_mean", "running_var")


def bn_statistics(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every BatchNorm layer's running mean and variance, by state-dict name."""
    norms = {id(m) for m in batchnorm_layers(model)}
    return {f"{name}.{stat}": getattr(m, stat).detach().clone()
            for name, m in model.named_modules() if id(m) in norms for stat in STAT_NAMES}


def float_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every float tensor of ``model``'s state (weights and BN statistics; not the BN batch counters)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}


@dataclass(frozen=True)
class SmallInputState:
    """Tensors that replace the model's own for inputs of at most ``max_pixels`` pixels (run shape, padding included).

    ``state`` holds every BN layer's statistics and, where the small inputs have
    weights of their own, those weights too (any float tensors of the state dict).
    """

    max_pixels: int
    state: dict[str, torch.Tensor]
    notes: dict = field(default_factory=dict)  # how they were made (data, scales, batches, the fine-tune)

    def applies(self, hw: tuple[int, int]) -> bool:
        return hw[0] * hw[1] <= self.max_pixels

    @property
    def has_weights(self) -> bool:
        return any(not k.endswith(STAT_NAMES) for k in self.state)

    def describe(self) -> str:
        return "small-input weights" if self.has_weights else "small-input BN statistics"

    def apply(self, model: torch.nn.Module) -> torch.nn.Module:
        """A copy of ``model`` with this state; ``model`` itself is left as it is."""
        own = model.state_dict()
        misfits = sorted(k for k, v in self.state.items() if k not in own or own[k].shape != v.shape)
        missing = sorted(bn_statistics(model).keys() - self.state.keys())
        if misfits or missing:
            raise ValueError(f"the small-input state does not fit this model (layers {(misfits + missing)[:3]} ...); "
                             "make it again for these weights with 'segment small-input-stats'")
        small = copy.deepcopy(model)
        with torch.no_grad():
            targets = small.state_dict()
            for name, value in self.state.items():
                targets[name].copy_(value)
        return small.eval()

    def blended(self, own: dict[str, torch.Tensor], *, weight: float) -> "SmallInputState":
        """``weight`` x this state + (1 - weight) x ``own`` (the model's tensors of the same names), one by one.

        Why: averaging a fine-tune with the weights it started from (WiSE-FT,
        Wortsman et al., 2022) keeps what each regime learnt. The small-input
        weights, a fine-tune of the main weights at a frame's own scale, averaged
        with them half and half, BN statistics averaged alike, scored 2.4 and
        1.4 points above the better of the two at native on drives held out
        of the fine-tune (docs/train.md, "Averaged with the main weights");
        statistics measured afresh for the averaged weights scored 3.1 lower
        on one drive and 0.6 higher on the other.
        """
        if not 0.0 < weight <= 1.0:
            raise ValueError(f"the blend weight must be in (0, 1], got {weight}")
        missing = sorted(self.state.keys() - own.keys())
        if missing:
            raise ValueError(f"the model has no tensors {missing[:3]} ... to blend the small-input state with")
        state = {k: weight * v.float() + (1.0 - weight) * own[k].float() for k, v in self.state.items()}
        return SmallInputState(max_pixels=self.max_pixels, state=state, notes={**self.notes, "blend": weight})

    def to_checkpoint(self, *, half: bool = False) -> dict:
        """The checkpoint entry; ``half`` stores the weights in fp16 (half the bytes; BN statistics stay fp32)."""
        def stored(name: str, value: torch.Tensor) -> torch.Tensor:
            keep_fp32 = not half or name.endswith(STAT_NAMES)
            return (value.float() if keep_fp32 else value.half()).contiguous()

        return {"max_pixels": int(self.max_pixels), "state": {k: stored(k, v) for k, v in self.state.items()},
                "notes": dict(self.notes)}

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> "SmallInputState | None":
        entry = ckpt.get(CHECKPOINT_KEY)
        if entry is None and LEGACY_KEY in ckpt:
            legacy = ckpt[LEGACY_KEY]
            entry = {"max_pixels": legacy["max_pixels"], "state": legacy["stats"], "notes": legacy.get("notes", {})}
        if entry is None:
            return None
        return cls(max_pixels=int(entry["max_pixels"]), state={k: v.float() for k, v in entry["state"].items()},
                   notes=dict(entry.get("notes", {})))


class SizedModel:
    """The model an input size runs: ``model``, or for small inputs its copy with ``small``'s state."""

    def __init__(self, *, model: torch.nn.Module, small: SmallInputState | None) -> None:
        self.model = model
        self.small = small
        self._small_model: tuple[int, torch.nn.Module] | None = None  # (id of the model it copies, the copy)

    def uses_small(self, hw: tuple[int, int]) -> bool:
        return self.small is not None and self.small.applies(hw)

    def for_input(self, hw: tuple[int, int]) -> torch.nn.Module:
        return self._small() if self.uses_small(hw) else self.model

    def describe(self, hw: tuple[int, int]) -> str:
        """What a shape runs with beyond the model's own state ("small-input weights", ...); "" for nothing."""
        return self.small.describe() if self.uses_small(hw) else ""

    def models(self) -> list[torch.nn.Module]:
        """The model, then its small-input copy if there is one."""
        return [self.model] + ([self._small()] if self.small is not None else [])

    def _small(self) -> torch.nn.Module:
        # Rebuilt when the model is replaced (the benchmark shares one model between predictors).
        if self._small_model is None or self._small_model[0] != id(self.model):
            self._small_model = (id(self.model), self.small.apply(self.model))
        return self._small_model[1]
