"""The trained zoo's manifest: rows resolve to verified files; anything else is a clear UserError."""

import pytest

from segment.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from segment.errors import UserError
from segment.model import build_model
from segment.presets import get_preset
from segment.zoo_weights import ENV_DIR, ZooEntry, read_manifest, resolve_row, resolve_weights, sha256_of, write_manifest


def _write_row(folder, row="T7-11"):
    config = get_preset(row).config
    model = build_model(config)
    path = folder / f"{row}.pt"
    save_checkpoint(path, make_checkpoint(model=model, config=config, classes=[f"c{i}" for i in range(config.num_classes)],
                                          palette=[[i, i, i] for i in range(config.num_classes)],
                                          mean=[0.5] * 3, std=[0.25] * 3))
    entry = ZooEntry(row=row, file=path.name, sha256=sha256_of(path), preset=get_preset(row).name, params=1,
                     recipe="segment train ...", data="camvid train", miou={"native": 50.0, "half": 49.0, "full": 48.0})
    write_manifest({row: entry}, folder)
    return path


@pytest.fixture
def zoo(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_DIR, str(tmp_path))
    _write_row(tmp_path)
    return tmp_path


def test_row_resolves_to_its_verified_file_case_insensitively(zoo):
    assert resolve_row("T7-11") == zoo / "T7-11.pt"
    assert resolve_weights("t7-11") == zoo / "T7-11.pt"
    ckpt = load_checkpoint("T7-11")  # every --checkpoint goes through load_checkpoint
    assert ckpt["model_config"]["backbone"] == "mobilenet_v3_small"
    assert read_manifest()["T7-11"].miou["full"] == 48.0


def test_paths_are_not_rows(zoo, tmp_path):
    other = tmp_path / "elsewhere.pt"
    assert resolve_weights(other) == other
    assert str(resolve_weights("runs/x/last.pt")) == "runs/x/last.pt"


def test_unshipped_row_names_the_shipped_ones(zoo):
    with pytest.raises(UserError, match=r"T7-5.*shipped rows: T7-11"):
        resolve_row("T7-5")


def test_missing_file_is_refused(zoo):
    (zoo / "T7-11.pt").unlink()
    with pytest.raises(UserError, match=r"T7-11\.pt, which is missing"):
        load_checkpoint("T7-11")


def test_altered_file_is_refused_by_sha256(zoo):
    path = zoo / "T7-11.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="sha256.*damaged or was replaced"):
        load_checkpoint("T7-11")


def test_broken_manifest_is_a_user_error(zoo):
    (zoo / "manifest.json").write_text("{not json")
    with pytest.raises(UserError, match="not a model-zoo manifest"):
        resolve_row("T7-11")
