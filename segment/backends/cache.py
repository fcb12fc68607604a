"""Where exported models are kept: one folder per model weights, one file per size and precision.

Exports are slow (seconds) and deterministic, so they are cached under
``~/.cache/mnv3-lraspp`` (or ``$MNV3_LRASPP_CACHE``), keyed by a hash of the
weights, config and normalization: a retrained checkpoint never reuses a
stale graph. Files are written to a temporary name and renamed, so a crash
or two processes exporting at once never leave a half-written model.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable

import torch

ENV_VAR = "MNV3_LRASPP_CACHE"


def default_cache_dir() -> Path:
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mnv3-lraspp"


def model_key(model: torch.nn.Module, *, extra: dict | None = None) -> str:
    """A short hash of everything that shapes the exported graph's output."""
    h = hashlib.sha256()
    h.update(json.dumps(extra or {}, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and rename the result to ``path``; nothing is left at ``path`` on failure.

    ``write`` may create ``tmp_path`` as a file or as a folder (OpenVINO's xml + bin).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as tmp:
        tmp_path = Path(tmp) / path.name
        write(tmp_path)
        try:
            os.replace(tmp_path, path)
        except OSError:
            # A folder target that another process already wrote: theirs is as good as ours.
            if not path.exists():
                raise
    return path


def write_json_atomic(path: Path, obj) -> None:
    def write(tmp: Path) -> None:
        tmp.write_text(json.dumps(obj, indent=2))

    atomic_write(path, write)
