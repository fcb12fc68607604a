"""The demo checkpoint shipped inside the package (trained on CamVid, Cityscapes label space)."""

from __future__ import annotations

from pathlib import Path

from segment.errors import UserError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_CHECKPOINT = WEIGHTS_DIR / "camvid_mnv3_lraspp.pt"


def default_checkpoint() -> Path:
    if not DEFAULT_CHECKPOINT.is_file():
        raise UserError(
            f"the bundled demo checkpoint {DEFAULT_CHECKPOINT} is missing from this installation; "
            "pass --checkpoint PATH with a file written by 'segment train'"
        )
    return DEFAULT_CHECKPOINT
