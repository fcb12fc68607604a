"""Run logs (rank 0 only): JSON lines, TensorBoard events, a progress bar."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path


def _clean(v):
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None  # JSON has no NaN
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    return v


class RunLog:
    """metrics.jsonl (one JSON object per line, appended and flushed) + TensorBoard under out/tb."""

    def __init__(self, *, out: Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.path = out / "metrics.jsonl"
        self.writer = None
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(out / "tb"))

    def write(self, kind: str, iteration: int, **values) -> None:
        if not self.enabled:
            return
        record = {"kind": kind, "iter": iteration, "time": round(time.time(), 3), **values}
        with open(self.path, "a") as f:
            f.write(json.dumps(_clean(record)) + "\n")
        if self.writer is not None:
            for key, v in values.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.writer.add_scalar(f"{kind}/{key}", v, iteration)
                elif isinstance(v, dict):
                    for name, x in v.items():
                        if isinstance(x, (int, float)) and not math.isnan(x):
                            self.writer.add_scalar(f"{kind}/{key}/{name}", x, iteration)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def progress_bar(*, total: int, initial: int, enabled: bool):
    """tqdm with ETA; redraws rarely when stderr is a log file rather than a terminal."""
    from tqdm import tqdm

    interactive = sys.stderr.isatty()
    return tqdm(total=total, initial=initial, disable=not enabled, dynamic_ncols=True, unit="it",
                mininterval=0.5 if interactive else 30.0, desc="train")


def echo(message: str, *, enabled: bool = True) -> None:
    if enabled:
        from tqdm import tqdm

        tqdm.write(message, file=sys.stderr)
