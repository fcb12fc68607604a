"""Where exported models are kept: one folder per model weights, one file per size and precision.

Exports are slow (seconds) and deterministic, so they are cached under
``~/.cache/mnv3-lraspp`` (or ``$MNV3_LRASPP_CACHE``), keyed by a hash of the
weights, config and normalization: a retrained checkpoint never reuses a
stale graph. Files are written atomically (``segment.atomic``), so a crash
or two processes exporting at once never leave a half-written model.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
import torch

from segment.atomic import write_json, write_path_atomic

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


# The names this module's callers know; the one implementation is segment.atomic.
atomic_write = write_path_atomic
write_json_atomic = write_json
