"""The checkpoints shipped inside the package: a small registry of the paper's models, trained on CamVid.

Each bundled model has a name (``large``, the default, or ``small``), a file in
``segment/weights/``, the row of the paper's Table 7 it builds and a
description. A file may be absent from an installation (the small model ships
later than the large one): ``available()`` lists the ones present, and asking
for a missing one raises a ``UserError`` that names the file and what to do.
``segment predict --model`` and ``segment demo --model`` go through
``resolve_checkpoint`` and ``load_predictor``; ``Predictor.from_checkpoint(None)`` loads the default.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from segment.errors import UserError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class BundledModel:
    name: str  # what --model takes: "large", "small"
    file: str  # the checkpoint's file name in WEIGHTS_DIR (its guard records: <stem>.guard.json beside it)
    paper_row: str  # the row of the paper's Table 7 it builds
    preset: str  # that row as a preset of segment.presets ("T7-8"): the architecture its checkpoint must hold
    label: str  # a short name for pages and logs
    description: str

    @property
    def path(self) -> Path:
        return WEIGHTS_DIR / self.file  # read at call time: tests point WEIGHTS_DIR elsewhere

    def is_present(self) -> bool:
        return self.path.is_file()


MODELS: dict[str, BundledModel] = {
    m.name: m
    for m in (
        BundledModel(name="large", file="camvid_mnv3_lraspp.pt", paper_row="Table 7 row 8", preset="T7-8",
                     label="MobileNetV3-Large",
                     description="MobileNetV3-Large + LR-ASPP (RF2, output stride 16), trained on CamVid"),
        BundledModel(name="small", file="camvid_mnv3small_lraspp.pt", paper_row="Table 7 row 11", preset="T7-11",
                     label="MobileNetV3-Small",
                     description="MobileNetV3-Small + LR-ASPP (RF2, output stride 16), trained on CamVid: "
                                 "faster, less accurate"),
    )
}
DEFAULT_MODEL = "large"
# The default model's file, for code that names it directly (its guard-record test, the docs).
DEFAULT_CHECKPOINT = MODELS[DEFAULT_MODEL].path


def get_model(name: str) -> BundledModel:
    """The registry entry called ``name``; an unknown name is a ``UserError`` listing the choices."""
    try:
        return MODELS[name]
    except KeyError:
        raise UserError(f"unknown bundled model {name!r}; choose one of {', '.join(MODELS)}") from None


def available() -> list[BundledModel]:
    """The bundled models whose checkpoint is present in this installation, default first."""
    return [m for m in MODELS.values() if m.is_present()]


def checkpoint_for(name: str = DEFAULT_MODEL) -> Path:
    """The checkpoint file of bundled model ``name``; a missing file is a ``UserError`` saying what to do."""
    model = get_model(name)
    if not model.is_present():
        others = [m.name for m in available() if m.name != model.name]
        instead = f", or use --model {others[0]}" if others else ""
        raise UserError(
            f"the bundled {model.name} model ({model.label}, {model.paper_row}) needs {model.path}, which is "
            f"missing from this installation; pass --checkpoint PATH with a file written by 'segment train'"
            f"{instead}"
        )
    return model.path


def default_checkpoint() -> Path:
    """The default bundled model's checkpoint (``large``)."""
    return checkpoint_for(DEFAULT_MODEL)


def check_choice(checkpoint: str | Path | None, model: str | None) -> None:
    """``--checkpoint`` and ``--model`` together are an error: one of them would be silently ignored."""
    if checkpoint is not None and model is not None:
        raise UserError(f"--checkpoint {checkpoint} and --model {model} both name the weights; pass only one")


def resolve_checkpoint(checkpoint: str | Path | None, model: str | None) -> Path:
    """What ``--checkpoint`` and ``--model`` name together: one file.

    ``--checkpoint`` replaces the default model; naming both is an error (``check_choice``).
    """
    check_choice(checkpoint, model)
    if checkpoint is not None:
        from segment.zoo_weights import resolve_weights

        return resolve_weights(checkpoint)  # a file, or a trained zoo row such as T7-5
    return checkpoint_for(DEFAULT_MODEL if model is None else model)


def load_predictor(checkpoint: str | Path | None, backend: str | None = None, model: str | None = None):
    """The one Predictor of ``segment predict`` and the demo: ``checkpoint``, or else the bundled ``model``
    (default large). ``backend=None`` lets the Predictor choose."""
    from segment.predict import Predictor  # lazy: the registry stays cheap to import

    kwargs = {} if backend is None else {"backend": backend}
    return Predictor.from_checkpoint(resolve_checkpoint(checkpoint, model), **kwargs)
