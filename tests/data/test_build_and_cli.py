import pytest
import torch
from torch.utils.data import DataLoader

from data.base import worker_init_fn
from data.build import build_dataset
from data.cityscapes import CityscapesDataset
from data.errors import DatasetError
from data.transforms import train_transform
from segment.cli import main


def test_build_by_name(synth_root):
    assert isinstance(build_dataset(name="synthetic", root=synth_root, split="val"), CityscapesDataset)
    assert isinstance(build_dataset(name="cityscapes", root=synth_root, split="train"), CityscapesDataset)
    with pytest.raises(DatasetError, match="unknown dataset 'kitti'"):
        build_dataset(name="kitti", root=synth_root, split="train")
    with pytest.raises(DatasetError, match="folder not found"):
        build_dataset(name="camvid", root=synth_root, split="train")


def test_dataloader_with_workers_batches(synth_root):
    ds = build_dataset(name="synthetic", root=synth_root, split="train", transform=train_transform(crop=(64, 96)))
    loader = DataLoader(ds, batch_size=2, num_workers=2, worker_init_fn=worker_init_fn)
    images, masks = next(iter(loader))
    assert images.shape == (2, 3, 64, 96) and images.dtype == torch.float32
    assert masks.shape == (2, 64, 96) and masks.dtype == torch.int64


def test_synth_then_check_cli(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "s"), "--n", "2", "--size", "64x128", "--seed", "4"]) == 0
    assert main(["data", "check", "--dataset", "synthetic", "--root", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "train       2 image/label pairs" in out and "val         2 image/label pairs" in out
    # --data-root, as train and eval spell it (and as the data errors name it), works here too.
    assert main(["data", "check", "--dataset", "synthetic", "--data-root", str(tmp_path / "s")]) == 0


def test_check_cli_reports_one_line_and_status_2(tmp_path, capsys):
    assert main(["data", "check", "--dataset", "cityscapes", "--root", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "segment data: error:" in err and "missing: dataset root not found" in err and "--data-root" in err
    assert "Traceback" not in err


def test_synth_cli_bad_size(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path), "--n", "1", "--size", "5000x10"]) == 2
    assert "size 5000x10" in capsys.readouterr().err


def test_build_checks_every_pairs_headers_before_loading(synth_root, tmp_path):
    import shutil

    root = tmp_path / "s"
    shutil.copytree(synth_root, root)
    images = sorted((root / "leftImg8bit" / "val").rglob("*.png"))
    labels = sorted((root / "gtFine" / "val").rglob("*_labelIds.png"))
    for path in (images[0], labels[-1]):  # two files cut short, as by an interrupted copy
        path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError, match="2 problems in the dataset") as info:
        build_dataset(name="synthetic", root=root, split="val")
    assert f"{images[0]}: truncated PNG" in str(info.value) and f"{labels[-1]}: truncated PNG" in str(info.value)


class _Broken(torch.utils.data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        raise DatasetError("frames/x.png: the image is damaged; re-export it")


def test_an_error_from_a_loader_worker_is_printed_as_its_own_message(monkeypatch, capsys):
    import argparse

    import segment.cli as cli

    def run(args):
        next(iter(DataLoader(_Broken(), batch_size=1, num_workers=1)))

    monkeypatch.setattr(cli, "_load", lambda command: argparse.Namespace(run=run, add_arguments=lambda parser: None))
    assert cli.main(["eval"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "segment eval: error: frames/x.png: the image is damaged; re-export it"
