"""Your own data: a folder of images, single-channel label PNGs and a class file.

Layout::

    ROOT/classes.json
    ROOT/train/images/<name>.png|.jpg|.jpeg
    ROOT/train/labels/<name>.png      # same <name>, 8-bit single-channel (mode L or P)
    ROOT/val/images/...  ROOT/val/labels/...   # any split names you like

A label pixel holds the index of its class in ``classes.json`` (0, 1, ...);
255 means "not labelled" and is ignored by the loss and the metrics.
``classes.json``::

    {
      "name": "my-streets",                       # optional, default "folder"
      "classes": [
        {"name": "road", "color": [128, 64, 128]},
        {"name": "car",  "color": [0, 0, 142]}
      ],
      "eval": ["road", "car"]                     # optional: classes scored in mIoU (default all)
    }

A bare list (the value of "classes") is accepted too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .base import PairDataset, Transform
from .errors import DatasetError
from .labels import IGNORE_INDEX, LabelSpace

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
CLASS_FILE = "classes.json"
_EXAMPLE = '{"classes": [{"name": "road", "color": [128, 64, 128]}, {"name": "car", "color": [0, 0, 142]}]}'


def load_classes(root: str | Path) -> LabelSpace:
    """The label space described by ``root/classes.json``; DatasetError naming the field at fault."""
    path = Path(root) / CLASS_FILE
    if not path.is_file():
        raise DatasetError(f"{path}: class file not found; write one like {_EXAMPLE}")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    name = "folder"
    evaluate = None
    if isinstance(spec, dict):
        name = spec.get("name", name)
        evaluate = spec.get("eval")
        spec = spec.get("classes")
    if not isinstance(spec, list) or not spec:
        raise DatasetError(f"{path}: 'classes' must be a non-empty list, e.g. {_EXAMPLE}")
    if len(spec) > IGNORE_INDEX:
        raise DatasetError(f"{path}: {len(spec)} classes; at most {IGNORE_INDEX} (value 255 means ignore)")
    classes, palette = [], []
    for i, entry in enumerate(spec):
        where = f"{path}: classes[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise DatasetError(f"{where}: needs a non-empty 'name' string, e.g. {{\"name\": \"road\", \"color\": [128, 64, 128]}}")
        color = entry.get("color")
        if (not isinstance(color, list) or len(color) != 3
                or not all(isinstance(c, int) and 0 <= c <= 255 for c in color)):
            raise DatasetError(f"{where} ({entry['name']!r}): 'color' must be three integers 0..255, e.g. [128, 64, 128]")
        if entry["name"] in classes:
            raise DatasetError(f"{where}: class name {entry['name']!r} appears twice; names must be unique")
        classes.append(entry["name"])
        palette.append(tuple(color))
    if evaluate is None:
        eval_ids = tuple(range(len(classes)))
    else:
        unknown = [c for c in evaluate if c not in classes] if isinstance(evaluate, list) else [evaluate]
        if unknown or not evaluate:
            raise DatasetError(f"{path}: 'eval' must list class names from 'classes'; unknown: {unknown}")
        eval_ids = tuple(classes.index(c) for c in evaluate)
    return LabelSpace(str(name), tuple(classes), tuple(palette), eval_ids)


def folder_splits(root: str | Path) -> tuple[str, ...]:
    """Split names present under ``root`` (folders holding an images/ folder)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root not found; check --data-root")
    splits = tuple(sorted(p.name for p in root.iterdir() if (p / "images").is_dir()))
    if not splits:
        raise DatasetError(f"{root}: no split folders found; expected e.g. {root}/train/images and {root}/train/labels")
    return splits


def folder_files(root: str | Path, split: str) -> list[tuple[Path, Path]]:
    """(image, label) pairs of ``split``; DatasetError for missing folders or unpaired files."""
    root = Path(root)
    image_dir, label_dir = root / split / "images", root / split / "labels"
    for d in (image_dir, label_dir):
        if not d.is_dir():
            raise DatasetError(f"{d}: folder not found; a folder dataset holds {split}/images/ and {split}/labels/")
    images = {p.stem: p for p in sorted(image_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    if not images:
        raise DatasetError(f"{image_dir}: no images (.png/.jpg/.jpeg) found")
    labels = {p.stem: p for p in label_dir.iterdir() if p.suffix.lower() == ".png"}
    problems = [f"{images[s]}: image without its label {label_dir / (s + '.png')}; add the label or remove the image"
                for s in sorted(set(images) - set(labels))]
    problems += [f"{labels[s]}: label without an image named {s}.* in {image_dir}; add the image or remove the label"
                 for s in sorted(set(labels) - set(images))]
    from .validate import raise_problems

    raise_problems(problems, root)
    return [(images[s], labels[s]) for s in sorted(images)]


def validate_folder(
    root: str | Path, splits: tuple[str, ...] | None = None, *, deep: bool = False
) -> dict[str, int]:
    """Check the class file and every pair (sizes, truncation, label values); return pairs per split."""
    from .validate import check_pairs, raise_problems

    space = load_classes(root)
    allowed = np.zeros(256, bool)
    allowed[: space.num_classes] = True
    allowed[IGNORE_INDEX] = True
    expected = f"class indices 0..{space.num_classes - 1} from {CLASS_FILE}, or 255 = ignore"
    fix = "store class indices, not colours, in label PNGs (a palette PNG whose indices are the classes works)"

    counts, problems = {}, []
    for split in splits or folder_splits(root):
        files = folder_files(root, split)
        problems += check_pairs(files, allowed_for=lambda _p: (allowed, expected, fix), deep=deep,
                                fix="re-export or remove it")
        counts[split] = len(files)
    raise_problems(problems, Path(root))
    return counts


class FolderDataset(PairDataset):
    """A folder dataset's ``split``; yields (image 3xHxW float32, class ids HxW int64, 255 = ignore).

    ``validate=True`` checks this split (and classes.json) before use.
    """

    def __init__(
        self, *, root: str | Path, split: str, transform: Transform | None = None, validate: bool = True
    ):
        super().__init__(transform=transform)
        self.root = Path(root)
        self.split = split
        self.label_space = load_classes(self.root)
        if validate:
            validate_folder(self.root, (split,))
        self.files = folder_files(self.root, split)

    def to_train_ids(self, label: np.ndarray, label_path: Path) -> np.ndarray:
        return label
