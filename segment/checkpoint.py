"""The checkpoint format: one file with weights, model config, label space and training state.

Written atomically (``segment.atomic``: temporary file, fsync, rename) so an
interrupted save never leaves a broken file; read with
``torch.load(weights_only=True)`` so a foreign pickle cannot run code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from segment.atomic import torch_save
from segment.config import ModelConfig
from segment.errors import UserError

FORMAT = "mnv3-lraspp-checkpoint"
# 2: the model config carries the reference-fidelity fields (segment.config); a version-1
# file lacks them and rebuilds with segment.config.legacy_fields, as it was trained.
VERSION = 2
REQUIRED_KEYS = ("format", "version", "model_config", "model", "classes", "palette", "normalization")


class CheckpointError(UserError):
    """A file that is not one of our checkpoints, or is damaged."""


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through :func:`segment.atomic.torch_save`: the old file survives a failed save."""
    torch_save(obj, path)


def make_checkpoint(
    *,
    model: torch.nn.Module,
    config: ModelConfig,
    classes: list[str],
    palette: list[list[int]],
    mean: list[float],
    std: list[float],
    **extra: Any,
) -> dict:
    """The checkpoint dict; ``extra`` holds training state (optimizer, iteration, rng, metrics, ...)."""
    if len(classes) != config.num_classes or len(palette) != config.num_classes:
        raise ValueError(
            f"{len(classes)} class names and {len(palette)} colours given for a model with {config.num_classes} classes"
        )
    state = {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()}
    return {
        "format": FORMAT,
        "version": VERSION,
        "model_config": config.to_dict(),
        "model": state,
        "classes": list(classes),
        "palette": [list(map(int, c)) for c in palette],
        "normalization": {"mean": list(map(float, mean)), "std": list(map(float, std))},
        **extra,
    }


def save_checkpoint(path: str | os.PathLike, checkpoint: dict) -> None:
    atomic_torch_save(checkpoint, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read and check a checkpoint file, or a paper row (``T7-5``) of the trained zoo (segment.zoo_weights)."""
    from segment.zoo_weights import resolve_weights

    path = resolve_weights(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass --checkpoint with a file written by 'segment train'")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes); copy or download it again, or use a file written by "
                              "'segment train'")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError, RuntimeError (truncated zip), EOFError, ...
        first_line = next(iter(str(exc).splitlines()), "")[:200]
        raise CheckpointError(
            f"{path} is not a readable checkpoint of this project ({type(exc).__name__}: {first_line}); "
            "it may be truncated or a foreign/unsafe pickle, which is refused. Use a file written by 'segment train'."
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a checkpoint of this project (no '{FORMAT}' format tag)")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} lacks required fields {missing}; it is damaged or from an incompatible version")
    if ckpt["version"] > VERSION:
        raise CheckpointError(f"{path} has format version {ckpt['version']}; this install reads up to {VERSION}: upgrade the package")
    _check_tensors_fit(path, ckpt)
    return ckpt


def _check_tensors_fit(path: Path, ckpt: dict) -> None:
    """Compare the stored tensors with the network the config describes, before anything runs:
    a damaged or hand-edited file is refused here with its path, not by a traceback from
    ``load_state_dict`` or from the first prediction that uses a small-input state."""
    from segment.model import build_model
    from segment.small_inputs import CHECKPOINT_KEY, LEGACY_KEY

    damaged = f"{path} is damaged or from an incompatible version"
    try:
        config = ModelConfig.from_dict(ckpt["model_config"])
        with torch.device("meta"):  # shapes only: no memory, about 40 ms
            expected = {k: tuple(v.shape) for k, v in build_model(config).state_dict().items()}
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{damaged}: its model_config does not build a network ({exc})") from None
    for field in ("classes", "palette"):
        if len(ckpt[field]) != config.num_classes:
            raise CheckpointError(f"{damaged}: {len(ckpt[field])} {field} for a network of {config.num_classes} classes")
    stored = ckpt["model"]
    small = (ckpt.get(CHECKPOINT_KEY) or {}).get("state") or (ckpt.get(LEGACY_KEY) or {}).get("stats") or {}
    for what, tensors, complete in (("model", stored, True), ("small-input state", small, False)):
        problems = [f"missing {k}" for k in expected if complete and k not in tensors]
        problems += [f"unexpected {k}" for k in tensors if k not in expected]
        problems += [f"{k} is {tuple(v.shape)}, the network's {expected[k]}" for k, v in tensors.items()
                     if k in expected and tuple(v.shape) != expected[k]]
        if problems:
            more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
            raise CheckpointError(f"{damaged}: its {what} does not fit the network ({'; '.join(problems[:3])}{more})")


def model_from_checkpoint(ckpt: dict) -> torch.nn.Module:
    from segment.model import build_model

    config = ModelConfig.from_dict(ckpt["model_config"])
    model = build_model(config)
    model.load_state_dict(ckpt["model"])
    return model.eval()


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    # DDP wraps in .module, torch.compile in ._orig_mod; checkpoints hold the plain model.
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner
