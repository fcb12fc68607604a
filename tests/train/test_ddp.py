"""Two real processes under torchrun (gloo, CPU): replicas stay identical; rank 0 alone logs and saves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from train.checkpointing import load_training_checkpoint

REPO = Path(__file__).resolve().parents[2]


def test_two_process_training_keeps_replicas_identical(synth_root, tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "segment.cli", "train", "--recipe", "cpu", "--dataset", "synthetic", "--data-root", str(synth_root),
           "--preset", "small", "--crop", "64x64", "--batch", "4", "--iters", "4", "--eval-every", "4",
           "--ckpt-every", "4", "--log-every", "1", "--workers", "0", "--threads", "1", "--device", "cpu",
           "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    final = json.loads((out / "final.json").read_text())
    assert final["world_size"] == 2
    # Every rank compared its parameters with rank 0's at the end: bit-identical.
    assert final["param_max_abs_diff_across_ranks"] == 0.0
    assert "2 process(es)" in proc.stderr
    # Rank 0 alone writes logs: each iteration once, one evaluation (over both ranks' shards of val).
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4]
    val = [r for r in records if r["kind"] == "val"]
    assert len(val) == 1 and val[0]["images"] == 4
    ckpt = load_training_checkpoint(out / "last.pt")
    assert ckpt["iteration"] == 4
    assert not any(k.startswith("module.") for k in ckpt["model"])  # saved unwrapped from DDP
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
