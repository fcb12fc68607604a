"""The checkpoint format: atomic writes, safe loading, clear refusals."""

import os
import pickle

import pytest
import torch

from segment import create_model
from segment.checkpoint import CheckpointError, load_checkpoint, make_checkpoint, model_from_checkpoint, save_checkpoint
from segment.presets import get_preset


def _ckpt(**extra):
    cfg = get_preset("small").config
    model = create_model("small")
    return model, make_checkpoint(model=model, config=cfg, classes=[f"c{i}" for i in range(19)],
                                  palette=[[i, i, i] for i in range(19)], mean=[0.5] * 3, std=[0.25] * 3, **extra)


def test_roundtrip_rebuilds_the_same_model(tmp_path):
    model, ckpt = _ckpt(iteration=7)
    save_checkpoint(tmp_path / "c.pt", ckpt)
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert loaded["iteration"] == 7 and loaded["classes"][3] == "c3"
    rebuilt = model_from_checkpoint(loaded)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model.eval()(x))


def test_saved_file_mode_follows_umask(tmp_path):
    _, ckpt = _ckpt()
    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "c.pt", ckpt)
    finally:
        os.umask(old)
    assert (tmp_path / "c.pt").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary left behind


def test_refuses_foreign_and_missing_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a checkpoint of this project"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(os.getcwd))  # a pickle that names a callable
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(tmp_path / "evil.pt")


def test_class_count_must_match_the_model():
    cfg = get_preset("small").config
    with pytest.raises(ValueError, match="3 class names"):
        make_checkpoint(model=create_model("small"), config=cfg, classes=["a", "b", "c"],
                        palette=[[0, 0, 0]] * 3, mean=[0] * 3, std=[1] * 3)
