import json

import cv2
import numpy as np
import pytest

from data.cityscapes import validate_cityscapes
from data.errors import DatasetError
from data.loadbench import main as loadbench_main, workers_needed
from data.recompress import recompress_tree


def test_recompress_is_lossless_and_valid(synth_root, tmp_path):
    n = recompress_tree(src=synth_root, out=tmp_path / "stored", level=0)
    assert n == 24  # 8 images, 8 labelIds, 8 instanceIds
    assert validate_cityscapes(tmp_path / "stored") == {"train": 4, "val": 4}
    for original in synth_root.rglob("*.png"):
        copy = tmp_path / "stored" / original.relative_to(synth_root)
        assert np.array_equal(cv2.imread(str(original), -1), cv2.imread(str(copy), -1))
        if original.name.endswith("_leftImg8bit.png"):
            assert copy.stat().st_size > original.stat().st_size  # stored, not deflated
        else:
            assert copy.read_bytes() == original.read_bytes()  # labels copied as they are


def test_recompress_refuses_to_overwrite(synth_root):
    with pytest.raises(DatasetError, match="must differ"):
        recompress_tree(src=synth_root, out=synth_root)


def test_workers_needed():
    assert workers_needed(10.0, batch=16, steps_s=(0.1, 0.2)) == {"0.1 s/step": 16, "0.2 s/step": 8}


def test_loadbench_runs_small(tmp_path, capsys):
    out = tmp_path / "lb.json"
    assert loadbench_main(["--n", "2", "--size", "64x128", "--crop", "48", "--repeat", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["image_size"] == [64, 128] and result["crop"] == 48
    assert all(r["images_per_s"] > 0 for r in result["pipelines"].values())
    assert "images/s per worker" in capsys.readouterr().out


def test_loader_timing_skips_the_batches_built_during_start_up(synth_root, monkeypatch):
    # All workers start together and each builds a whole batch, so the first round of
    # batches arrives at once; counting it inflated the rate (271 instead of ~85 images/s
    # with 15 workers on a 16-core GPU machine). It must be consumed before the clock starts.
    import torch.utils.data

    from data import loadbench

    seen = {}

    class Recording(torch.utils.data.RandomSampler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen["samples"] = self.num_samples

    monkeypatch.setattr(torch.utils.data, "RandomSampler", Recording)
    rate = loadbench.measure_loader(root=synth_root, crop=32, workers=2, batch=2, batches=1)
    assert rate > 0
    assert seen["samples"] == 2 * (2 + 3 * 2)  # batch x (one round of 2 workers + 3 rounds timed)
