"""The trained model zoo: one weights file per paper row, outside the package, listed in a manifest.

``zoo/manifest.json`` (at the repository root, or the folder named by the
``MNV3_ZOO_DIR`` environment variable) maps each shipped row (``T7-5``,
``T8-V3-OS32``, ...) to a weights-only fp16 checkpoint in that folder, its
sha256, the recipe and data it was trained with, and its CamVid mIoU at
native / half / full size. ``--checkpoint T7-5`` anywhere a checkpoint is read
(``segment.checkpoint.load_checkpoint``) resolves through ``resolve_weights``:
an unknown row, a missing file or a file whose sha256 differs is a
``UserError`` saying what to do. ``segment zoo-add`` writes an entry.

The zoo lives outside the Python package because it is data about the
project's experiments (a dozen files), not what ``predict`` and the demo need
(the bundled models of ``segment.bundled``); an editable install (the README's)
finds it beside the sources.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from segment.errors import UserError

MANIFEST = "manifest.json"
ENV_DIR = "MNV3_ZOO_DIR"
ROW_NAME = re.compile(r"^T\d+-[A-Za-z0-9-]+$", re.IGNORECASE)  # T7-5, T8-V3-OS32


@dataclass
class ZooEntry:
    row: str  # paper row, e.g. "T7-5"
    file: str  # weights file in the zoo folder
    sha256: str
    preset: str  # segment.presets name of the architecture
    params: int
    recipe: str  # how it was trained, as a command line
    data: str  # what it was trained on
    miou: dict[str, float] = field(default_factory=dict)  # CamVid val mIoU (percent) by size: native, half, full
    trained: dict = field(default_factory=dict)  # iterations, wall time, hardware


def zoo_dir() -> Path:
    """The zoo folder: ``$MNV3_ZOO_DIR`` or ``zoo/`` beside the ``segment`` package (a source checkout)."""
    env = os.environ.get(ENV_DIR)
    return Path(env) if env else Path(__file__).resolve().parents[1] / "zoo"


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(folder: Path | None = None) -> dict[str, ZooEntry]:
    """Entries by row name (upper case); an empty dict when there is no manifest."""
    path = (folder or zoo_dir()) / MANIFEST
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text())
        return {e["row"].upper(): ZooEntry(**e) for e in raw["rows"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path} is not a model-zoo manifest ({type(exc).__name__}: {exc}); "
                        "restore it from the repository") from None


def write_manifest(entries: dict[str, ZooEntry], folder: Path | None = None) -> Path:
    from segment.atomic import write_text
    from segment.presets import list_presets

    order = {p.paper.row.upper(): i for i, p in enumerate(list_presets())}
    rows = sorted(entries.values(), key=lambda e: (order.get(e.row.upper(), len(order)), e.row))
    path = (folder or zoo_dir()) / MANIFEST
    write_text(path, json.dumps({"rows": [asdict(e) for e in rows]}, indent=1) + "\n")
    return path


def is_row_name(name: str | os.PathLike) -> bool:
    """Whether ``name`` reads as a paper row (and is not an existing file, which wins)."""
    text = str(name)
    return bool(ROW_NAME.match(text)) and not Path(text).exists()


def resolve_row(row: str, folder: Path | None = None) -> Path:
    """The verified weights file of a shipped row; ``UserError`` for an unknown row, missing or altered file."""
    folder = folder or zoo_dir()
    entries = read_manifest(folder)
    entry = entries.get(row.upper())
    if entry is None:
        shipped = ", ".join(e.row for e in entries.values()) or "none"
        raise UserError(f"--checkpoint {row}: no trained weights for that row in the model zoo {folder} "
                        f"(shipped rows: {shipped}); train it with 'segment train --preset {row}' and pass the file")
    path = folder / entry.file
    if not path.is_file():
        raise UserError(f"--checkpoint {row}: the zoo's manifest lists {path}, which is missing; "
                        "restore it from the repository (git checkout -- zoo/)")
    digest = sha256_of(path)
    if digest != entry.sha256:
        raise UserError(f"--checkpoint {row}: {path} has sha256 {digest[:12]}..., the manifest says "
                        f"{entry.sha256[:12]}...: the file is damaged or was replaced; restore it from the repository")
    return path


def resolve_weights(name: str | os.PathLike) -> Path:
    """A checkpoint path, or a paper row name resolved through the zoo's manifest."""
    return resolve_row(str(name)) if is_row_name(name) else Path(name)
