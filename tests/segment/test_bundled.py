"""The bundled checkpoints: the registry (large, small), the shipped files, the guard records beside them."""

import json

import pytest

from segment import bundled
from segment.bundled import DEFAULT_CHECKPOINT
from segment.checkpoint import load_checkpoint
from segment.config import ModelConfig
from segment.errors import UserError
from segment.predict import MIN_AGREEMENT, Predictor, guard_file_for
from segment.presets import get_preset
from segment.sizes import plan_run


@pytest.mark.parametrize("name", ["large", "small"])
def test_shipped_guard_records_belong_to_the_shipped_weights(name):
    checkpoint = bundled.checkpoint_for(name)
    path = guard_file_for(checkpoint)
    assert path.is_file(), "regenerate with 'segment bench --guard-data ... --guard-out' after retraining"
    records = json.loads(path.read_text())["records"]
    predictor = Predictor.from_checkpoint(checkpoint)
    assert predictor.guard_file == path
    # Retrained weights change the key: stale records would then be ignored, so catch it here.
    assert {r["key"] for r in records} == {predictor.key}
    for r in records:
        assert {"backend", "precision", "size", "engine", "cpu", "images", "agreement", "agreement_min",
                "miou_drop"} <= set(r)
        assert 0.0 <= r["agreement_min"] <= r["agreement"] <= 1.0
        assert "root" not in r  # no paths of the machine that measured them
    # Measured as photos run: CamVid's 4:3 frames in a 4:3 bucket of each budget. The records of this
    # machine's kind (avx512_bf16) at today's buckets; a kind measured with the earlier equal-area
    # buckets (608x832, 1248x1664) keeps those records, which hold for every bucket of their budget.
    today = {budget: plan_run((360, 480), budget).run_hw for budget in ("half", "full")}
    assert {tuple(r["size"]) for r in records if r["cpu"] == "avx512_bf16"} == set(today.values())
    for r in records:
        h, w = r["size"]
        assert r["budget"] in today and abs(w / h - 4 / 3) < 0.05 and h <= 2 * today[r["budget"]][0]
    # The reference of every record: fp32 on each backend, at both budgets, on every CPU kind measured.
    for cpu in {r["cpu"] for r in records}:
        kinds = {(r["backend"], r["precision"], r["budget"]) for r in records if r["cpu"] == cpu}
        assert {(b, "fp32", budget) for b in ("torch", "onnxruntime", "openvino") for budget in ("half", "full")} <= kinds
    # Where mixed was measured (a bf16 CPU), it passes the guard: the speed claims rest on it.
    for r in records:
        if r["precision"] == "mixed":
            assert r["agreement"] >= MIN_AGREEMENT


# -- the registry: large (default) and small ------------------------------------------------------

def test_registry_names_the_papers_two_models():
    assert list(bundled.MODELS) == ["large", "small"] and bundled.DEFAULT_MODEL == "large"
    large, small = bundled.get_model("large"), bundled.get_model("small")
    assert (large.file, large.paper_row, large.preset) == ("camvid_mnv3_lraspp.pt", "Table 7 row 8", "T7-8")
    assert (small.file, small.paper_row, small.preset) == ("camvid_mnv3small_lraspp.pt", "Table 7 row 11", "T7-11")
    assert "Large" in large.label and "Small" in small.label
    assert get_preset(large.preset).config.backbone == "mobilenet_v3_large"
    assert get_preset(small.preset).config.backbone == "mobilenet_v3_small"
    # The large model ships; it is the default everywhere (Predictor.from_checkpoint(None) included).
    assert bundled.checkpoint_for("large") == bundled.default_checkpoint() == DEFAULT_CHECKPOINT
    assert bundled.resolve_checkpoint(None, None) == DEFAULT_CHECKPOINT
    assert bundled.available()[0].name == "large"


@pytest.mark.parametrize("model", [m for m in bundled.MODELS.values() if m.is_present()], ids=lambda m: m.name)
def test_each_shipped_file_holds_its_papers_architecture(model):
    config = ModelConfig.from_dict(load_checkpoint(model.path)["model_config"])
    paper = get_preset(model.preset).config
    for field in ("backbone", "width_mult", "output_stride", "rf2", "head", "head_channels"):
        assert getattr(config, field) == getattr(paper, field), field


def test_registry_resolves_the_files_present(tmp_path, monkeypatch):
    monkeypatch.setattr(bundled, "WEIGHTS_DIR", tmp_path)
    assert bundled.available() == []
    (tmp_path / "camvid_mnv3small_lraspp.pt").write_bytes(b"weights")
    assert [m.name for m in bundled.available()] == ["small"]
    assert bundled.checkpoint_for("small") == tmp_path / "camvid_mnv3small_lraspp.pt"
    assert bundled.resolve_checkpoint(None, "small") == tmp_path / "camvid_mnv3small_lraspp.pt"
    # The default is missing here: the message names its file and what to do instead.
    with pytest.raises(UserError) as info:
        bundled.resolve_checkpoint(None, None)
    message = str(info.value)
    assert str(tmp_path / "camvid_mnv3_lraspp.pt") in message and "Table 7 row 8" in message
    assert "--checkpoint PATH" in message and "--model small" in message


def test_missing_small_model_names_its_file(tmp_path, monkeypatch):
    monkeypatch.setattr(bundled, "WEIGHTS_DIR", tmp_path)
    (tmp_path / "camvid_mnv3_lraspp.pt").write_bytes(b"weights")
    assert [m.name for m in bundled.available()] == ["large"]
    with pytest.raises(UserError, match="camvid_mnv3small_lraspp.pt, which is missing") as info:
        bundled.checkpoint_for("small")
    assert "--model large" in str(info.value) and "--checkpoint PATH" in str(info.value)


def test_unknown_name_and_both_options_refused(tmp_path):
    with pytest.raises(UserError, match="unknown bundled model 'medium'; choose one of large, small"):
        bundled.checkpoint_for("medium")
    with pytest.raises(UserError, match="pass only one"):
        bundled.resolve_checkpoint(tmp_path / "x.pt", "small")
    assert bundled.resolve_checkpoint(tmp_path / "x.pt", None) == tmp_path / "x.pt"  # --checkpoint alone: as given
