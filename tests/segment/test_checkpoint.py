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
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.pt is empty \(0 bytes\)"):
        load_checkpoint(tmp_path / "empty.pt")
    (tmp_path / "bare.pt").write_bytes(b"\x80\x02")  # a pickle cut right after its header: an error without text
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "bare.pt")


def _damaged(ckpt: dict, kind: str) -> dict:
    ckpt = dict(ckpt, model=dict(ckpt["model"]))
    name = "backbone.stem.0.weight"
    if kind == "shape":
        ckpt["model"][name] = ckpt["model"][name][:2]
    elif kind == "missing":
        del ckpt["model"][name]
    elif kind == "unexpected":
        ckpt["model"]["head.extra.weight"] = torch.zeros(1)
    elif kind == "classes":
        ckpt["classes"] = ckpt["classes"][:5]
    elif kind == "small-input":
        ckpt["small_input"] = {"max_pixels": 100, "state": {name: torch.zeros(3)}, "notes": {}}
    return ckpt


@pytest.mark.parametrize("kind, message", [
    ("shape", r"its model does not fit the network \(backbone\.stem\.0\.weight is \(2, 3, 3, 3\)"),
    ("missing", r"its model does not fit the network \(missing backbone\.stem\.0\.weight\)"),
    ("unexpected", r"its model does not fit the network \(unexpected head\.extra\.weight\)"),
    ("classes", r"5 classes for a network of 19 classes"),
    ("small-input", r"its small-input state does not fit the network \(backbone\.stem\.0\.weight is \(3,\)"),
])
def test_tensors_that_do_not_fit_the_network_are_refused_at_load(tmp_path, kind, message):
    _, ckpt = _ckpt()
    save_checkpoint(tmp_path / "edited.pt", _damaged(ckpt, kind))
    with pytest.raises(CheckpointError, match=r"edited\.pt is damaged or from an incompatible version: " + message):
        load_checkpoint(tmp_path / "edited.pt")


def test_class_count_must_match_the_model():
    cfg = get_preset("small").config
    with pytest.raises(ValueError, match="3 class names"):
        make_checkpoint(model=create_model("small"), config=cfg, classes=["a", "b", "c"],
                        palette=[[0, 0, 0]] * 3, mean=[0] * 3, std=[1] * 3)


def _head_logits(model, x):
    with torch.no_grad():
        features = model.backbone(x)
        return model.head(features["low"], features["high"])


def test_checkpoint_from_before_the_fidelity_fields_gives_its_old_outputs():
    """A version-1 checkpoint (V3-Small x0.5, written by the code before the fidelity fields)
    rebuilds the architecture it was trained with: same logits as that code computed."""
    import numpy as np
    from pathlib import Path

    from segment.config import ModelConfig
    from segment.model import build_model

    data = Path(__file__).parent / "data"
    ckpt = load_checkpoint(data / "legacy_v3small_x050.pt")
    assert ckpt["version"] == 1 and "gate" not in ckpt["model_config"]
    model = model_from_checkpoint(ckpt)
    assert (model.config.first_atrous_rate, model.config.gate, model.config.pool_cover) == (2, "sigmoid", False)
    x = torch.randn(1, 3, 360, 480, generator=torch.Generator().manual_seed(1))
    expected = torch.from_numpy(np.load(data / "legacy_v3small_x050_logits.npz")["logits"])
    got = _head_logits(model, x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    # The same weights in today's default architecture compute something else.
    current = ModelConfig(**{**ModelConfig.from_dict(ckpt["model_config"]).to_dict(),
                             **{k: getattr(ModelConfig(), k) for k in ("first_atrous_rate", "first_atrous_residual",
                                                                      "gate", "pool_cover")}, "pool_stride": (16, 20)})
    other = build_model(current).eval()
    other.load_state_dict(ckpt["model"], strict=False)
    assert (_head_logits(other, x) - expected).abs().max() > 1e-5


def test_new_checkpoints_carry_version_2_and_every_field(tmp_path):
    model = create_model("small", num_classes=3).eval()
    ckpt = make_checkpoint(model=model, config=model.config, classes=["a", "b", "c"], palette=[[0, 0, 0]] * 3,
                           mean=[0.5] * 3, std=[0.5] * 3)
    save_checkpoint(tmp_path / "m.pt", ckpt)
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded["version"] == 2
    assert loaded["model_config"]["gate"] == "hard_sigmoid" and loaded["model_config"]["first_atrous_rate"] == 1
    assert model_from_checkpoint(loaded).config == model.config
