"""Training checkpoints on top of segment.checkpoint's format.

A training checkpoint is a model checkpoint (weights, model config, classes,
palette, normalization) plus everything needed to continue exactly: optimizer,
LR scheduler, grad scaler, iteration, RNG states, metrics and the TrainConfig.
Everything is a tensor, list, dict, number or string, so it loads with
``torch.load(weights_only=True)``; saves are atomic (segment.checkpoint).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from segment.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from segment.small_inputs import ENTRY_KEYS as SMALL_INPUT_KEYS

# Keys of a training checkpoint beyond the model format's required ones.
TRAINING_KEYS = ("optimizer", "scheduler", "scaler", "iteration", "rng")


def rng_state() -> dict:
    """Python, NumPy and torch (CPU and CUDA) RNG states as plain lists/tensors."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    return {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_name, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    py_version, py_state, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state((np_name, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def training_checkpoint(*, model, model_config, label_space, mean, std, optimizer, scheduler, scaler,
                        iteration: int, train_config: dict, metrics: dict, best: dict, command: str) -> dict:
    return make_checkpoint(
        model=model, config=model_config, classes=list(label_space.classes),
        palette=[list(c) for c in label_space.palette], mean=list(mean), std=list(std),
        label_space={"name": label_space.name, "eval_train_ids": list(label_space.eval_train_ids)},
        optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
        scaler=scaler.state_dict() if scaler is not None else {},
        iteration=int(iteration), rng=rng_state(), train_config=train_config,
        metrics=metrics, best=best, command=command,
    )


def load_training_checkpoint(path: str | Path) -> dict:
    """A checkpoint that can be resumed; CheckpointError if it is foreign or weights-only."""
    from segment.checkpoint import CheckpointError

    ckpt = load_checkpoint(path)
    missing = [k for k in TRAINING_KEYS if k not in ckpt]
    if missing or "train_config" not in ckpt:
        raise CheckpointError(
            f"{path} holds weights only (no {', '.join(missing or ['train_config'])}); --resume needs a "
            "training checkpoint such as runs/<name>/last.pt"
        )
    return ckpt


# Fields copied into an exported (weights-only) checkpoint besides the required ones.
EXPORT_KEYS = ("label_space", "metrics", "best", "train_config", "command", "iteration", "trained",
               *SMALL_INPUT_KEYS)


def export_weights(src: str | Path, dst: str | Path, *, half: bool = False, average_with: str | Path | None = None,
                   src_weight: float = 0.5, **notes) -> dict:
    """Write a small inference checkpoint: weights + model/label metadata, no optimizer state.

    Weights are fp32, or fp16 with ``half`` (half the file; loading casts them
    back to fp32, and the model zoo ships them so). With ``average_with``, every
    float tensor (BN statistics included) is ``src_weight`` x src's plus the rest
    x that checkpoint's: the two must be fine-tunes of one model. ``notes`` (e.g.
    wall time) are stored under "trained". Still our checkpoint format, so
    load_checkpoint / Predictor accept it.
    """
    ckpt = load_checkpoint(src)
    if average_with is not None:
        for key in SMALL_INPUT_KEYS:
            ckpt.pop(key, None)  # made for SRC's weights alone, not for their mean
        ckpt["model"] = interpolate_weights(ckpt, load_checkpoint(average_with), src_weight=src_weight,
                                            names=(str(src), str(average_with)))
    out = {k: ckpt[k] for k in ("format", "version", "model_config", "classes", "palette", "normalization")}
    dtype = torch.float16 if half else torch.float32
    out["model"] = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in ckpt["model"].items()}
    for k in EXPORT_KEYS:
        if k in ckpt:
            out[k] = ckpt[k]
    if notes:
        out["trained"] = {**out.get("trained", {}), **notes}
    save_checkpoint(dst, out)
    return out


def interpolate_weights(a: dict, b: dict, *, src_weight: float, names: tuple[str, str]) -> dict:
    """``src_weight`` x checkpoint a's weights + (1 - src_weight) x b's; integer tensors (BN counters) from a.

    Interpolating a fine-tune with the weights it started from keeps much of what the
    fine-tune added while giving back less of what the start did well (docs/train.md,
    "Robustness to colour and exposure").
    """
    if not 0.0 <= src_weight <= 1.0:
        raise ValueError(f"the source's weight must be in [0, 1], got {src_weight}")
    if a["model_config"] != b["model_config"] or a["model"].keys() != b["model"].keys():
        raise ValueError(f"{names[1]} is not the same model as {names[0]} (model config or layers differ); "
                         "average only fine-tunes of one model")
    out = {}
    for k, va in a["model"].items():
        vb = b["model"][k]
        if va.shape != vb.shape:
            raise ValueError(f"{names[1]}: layer {k} has shape {tuple(vb.shape)}, {names[0]} {tuple(va.shape)}")
        if va.is_floating_point():
            va = (src_weight * va.float() + (1.0 - src_weight) * vb.float()).to(va.dtype)
        out[k] = va
    return out


__all__ = ["rng_state", "set_rng_state", "training_checkpoint", "load_training_checkpoint", "export_weights",
           "interpolate_weights", "save_checkpoint"]
