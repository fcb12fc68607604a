"""``segment zoo-add`` writes a verified fp16 row with its mIoUs; ``segment report --zoo`` measures the zoo."""

import json

import cv2
import numpy as np
import pytest
import torch

from data.labels import label_space
from data.transforms import MEAN, STD
from segment.checkpoint import make_checkpoint, save_checkpoint
from segment.cli import main
from segment.model import build_model
from segment.presets import get_preset
from segment.zoo_weights import ENV_DIR, read_manifest, sha256_of


@pytest.fixture
def camvid(tmp_path):
    """A CamVid-layout val split: 2 photos at 36x48 with labels of every value."""
    rng = np.random.default_rng(0)
    for split in ("val", "valannot"):
        (tmp_path / "cv" / split).mkdir(parents=True)
    for i in range(2):
        cv2.imwrite(str(tmp_path / "cv" / "val" / f"0001TP_{i:06d}.png"), rng.integers(0, 255, (36, 48, 3), np.uint8))
        cv2.imwrite(str(tmp_path / "cv" / "valannot" / f"0001TP_{i:06d}.png"),
                    (np.arange(36 * 48).reshape(36, 48) % 12).astype(np.uint8))
    return tmp_path / "cv"


def trained(tmp_path, row: str):
    """A training-style checkpoint of ``row``'s architecture (random weights)."""
    space = label_space("camvid")
    config = get_preset(row).config
    torch.manual_seed(0)
    path = tmp_path / f"{row}-last.pt"
    save_checkpoint(path, make_checkpoint(
        model=build_model(config), config=config, classes=list(space.classes),
        palette=[list(c) for c in space.palette], mean=MEAN, std=STD, iteration=500,
        train_config={"dataset": "camvid", "train_split": "train"}, command=f"segment train --preset {row}"))
    return path


@pytest.fixture
def zoo(tmp_path, monkeypatch):
    folder = tmp_path / "zoo"
    monkeypatch.setenv(ENV_DIR, str(folder))
    return folder


def test_zoo_add_writes_fp16_weights_manifest_and_mious(tmp_path, camvid, zoo):
    assert main(["zoo-add", "T7-11", str(trained(tmp_path, "T7-11")), "--data-root", str(camvid),
                 "--note", "wall_min=3.5"]) == 0
    entry = read_manifest()["T7-11"]
    assert entry.file == "T7-11.pt" and entry.sha256 == sha256_of(zoo / "T7-11.pt")
    assert entry.preset == "mnv3small-rf2-lraspp-f128" and entry.recipe == "segment train --preset T7-11"
    assert entry.trained == {"iterations": 500, "wall_min": 3.5} and entry.data.startswith("camvid train")
    assert set(entry.miou) == {"native", "half", "full"} and all(0 <= v <= 100 for v in entry.miou.values())
    state = torch.load(zoo / "T7-11.pt", weights_only=True)["model"]
    assert all(v.dtype in (torch.float16, torch.int64) for v in state.values())
    assert entry.params == sum(v.numel() for k, v in state.items() if "running" not in k and "num_batches" not in k)


def test_zoo_add_refuses_another_architecture(tmp_path, camvid, zoo, capsys):
    assert main(["zoo-add", "T7-8", str(trained(tmp_path, "T7-11")), "--data-root", str(camvid)]) == 2
    assert "not T7-8's architecture: backbone='mobilenet_v3_small'" in capsys.readouterr().err
    assert not zoo.exists() or not (zoo / "manifest.json").exists()


def test_report_from_two_zoo_rows(tmp_path, camvid, zoo, capsys):
    for row in ("T7-11", "T8-V3S-OS32"):
        assert main(["zoo-add", row, str(trained(tmp_path, row)), "--data-root", str(camvid)]) == 0
    manifest = read_manifest()
    capsys.readouterr()
    plot, saved = tmp_path / "plot.png", tmp_path / "rows.json"
    assert main(["report", "--zoo", "--backend", "torch", "--threads", "1", "--runs", "1", "--warmup", "0",
                 "--size", "half", "--no-peer-openvino", "--plot", str(plot), "--plot-size", "half",
                 "--save-bench", str(saved)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| ")]
    for row, name in (("T7-11", "11"), ("T8-V3S-OS32", "T8-V3S-OS32")):
        line = next(ln for ln in lines if ln.startswith(f"| {name} |"))
        assert f"{manifest[row.upper()].miou['half']:.2f}" in line  # the manifest's mIoU beside the time
        assert "torch " in line  # the fastest torch precision that passes the guard
    assert any("torchvision_lraspp" in ln for ln in lines)
    assert plot.stat().st_size > 1000
    assert {r["paper_row"] for r in json.loads(saved.read_text()) if not r["peer"]} == {"T7-11", "T8-V3S-OS32"}
