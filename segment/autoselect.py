"""How ``backend="auto"`` times its candidates, and when it looks again.

Two jobs, no knowledge of backends or models (callers pass plain callables):

- ``measure_interleaved``: time candidates in rounds, each round running every
  candidate once (round-robin, the starting candidate rotating), so a busy
  neighbour, a frequency change or a cache that another candidate evicts hits
  them all alike; a one-off series per candidate, right after each is built,
  gives whichever runs during a quiet spell the win. Rounds are added, up to a
  cap, while the two fastest are within ``margin`` of each other and their
  spreads overlap.
- ``LiveMonitor``: a running median of the chosen candidate on real requests,
  and the rule that says when it is slow enough, against the best other
  candidate's measured figure, to measure again; bounded by a request count
  and a time since the last measurement so it cannot thrash.

Everything is configured by dataclasses; the clock is injectable so tests can
make timings exact.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

# One heavy job at a time in a process: a measurement, or a backend's export and compile. Two
# measurements at once would time each other; a measurement beside an export would time the
# export; and torch's ONNX exporter keeps global state, so two exports at once fail.
WORK_LOCK = threading.RLock()

START_MODES = ("measure", "background", "after_first")


@dataclass
class MeasureConfig:
    warmup_rounds: int = 1  # untimed rounds first (first calls allocate, JIT, fault in pages)
    min_rounds: int = 5  # timed rounds always run
    max_rounds: int = 25  # the cap on rounds added while the two fastest are not separated
    margin: float = 0.10  # two fastest medians closer than this (relative) are "not separated"...
    max_seconds: float = 60.0  # ...unless this much time went into timed rounds already


@dataclass
class RecheckConfig:
    window: int = 12  # running median over the chosen backend's last requests
    min_samples: int = 8  # requests in the window before it may trigger anything
    slow_factor: float = 1.25  # re-measure when the running median > this x the best other's figure
    min_requests_between: int = 64  # at most one re-measurement per this many requests...
    min_seconds_between: float = 300.0  # ...and per this many seconds
    others: int = 3  # the chosen candidate is re-measured against this many of the fastest others


@dataclass
class AutoConfig:
    """How a Predictor with ``backend="auto"`` starts serving a size and keeps checking its choice.

    ``start``: "measure" (select before the first request at a size, as a library call
    expects), "background" (serve a default backend at once and select in a background
    thread: the demo), "after_first" (serve the first request on the default, select before
    the second: ``segment predict``).
    """

    start: str = "measure"
    reselect: bool = False  # ignore a remembered choice and measure again (once per size in this process)
    recheck: bool = True  # keep timing the chosen backend on real requests
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    live: RecheckConfig = field(default_factory=RecheckConfig)
    clock: Callable[[], float] = time.perf_counter  # seconds; injectable for exact tests

    def __post_init__(self) -> None:
        if self.start not in START_MODES:
            raise ValueError(f"start must be one of {', '.join(START_MODES)}, not {self.start!r}")


@dataclass
class Timing:
    """One candidate's timed runs in a measurement."""

    label: str
    times_ms: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def spread_ms(self) -> tuple[float, float]:
        """The interquartile range: where the middle half of the runs fell."""
        if len(self.times_ms) < 2:
            return (self.times_ms[0],) * 2
        q = statistics.quantiles(self.times_ms, n=4, method="inclusive")
        return (q[0], q[2])


@dataclass
class Measurement:
    timings: list[Timing]  # fastest median first
    rounds: int  # timed rounds run
    separated: bool  # the fastest two are more than the margin apart, or their spreads do not overlap
    seconds: float  # wall time of the timed rounds

    @property
    def fastest(self) -> Timing:
        return self.timings[0]

    def figures(self) -> dict[str, float]:
        return {t.label: round(t.median_ms, 3) for t in self.timings}


def separated(a: Timing, b: Timing, *, margin: float) -> bool:
    """Whether two candidates' timings tell them apart: medians more than ``margin`` apart, or
    spreads that do not overlap (a tight pair 5% apart is a real 5%)."""
    fast, slow = sorted((a, b), key=lambda t: t.median_ms)
    if slow.median_ms > fast.median_ms * (1.0 + margin):
        return True
    return fast.spread_ms[1] < slow.spread_ms[0]


def measure_interleaved(runners: dict[str, Callable[[], object]], *, config: MeasureConfig | None = None,
                        clock: Callable[[], float] = time.perf_counter,
                        stop: threading.Event | None = None) -> Measurement:
    """Time ``runners`` (label -> one request) in round-robin rounds; fastest median first.

    Each round runs every candidate once, starting one further along each round, so no
    candidate always follows the same one. ``stop`` set: finish the round and return.
    """
    config = config or MeasureConfig()
    if not runners:
        raise ValueError("nothing to measure")
    labels = list(runners)
    timings = {label: Timing(label=label) for label in labels}
    for _ in range(config.warmup_rounds):
        for label in labels:
            runners[label]()
    rounds, start = 0, clock()
    while True:
        offset = rounds % len(labels)
        for label in labels[offset:] + labels[:offset]:
            t0 = clock()
            runners[label]()
            timings[label].times_ms.append((clock() - t0) * 1e3)
        rounds += 1
        ranked = sorted(timings.values(), key=lambda t: t.median_ms)
        apart = len(ranked) < 2 or separated(ranked[0], ranked[1], margin=config.margin)
        if rounds >= config.min_rounds and (apart or rounds >= config.max_rounds
                                            or clock() - start >= config.max_seconds):
            break
        if stop is not None and stop.is_set():
            break
    return Measurement(timings=ranked, rounds=rounds, separated=apart, seconds=clock() - start)


class LiveMonitor:
    """The chosen backend's running median on real requests, and when to measure again.

    Due when the window's median is more than ``slow_factor`` x the best other candidate's
    measured figure, at least ``min_requests_between`` requests and ``min_seconds_between``
    seconds after the last measurement. Not thread-safe on its own: the Predictor holds its
    lock around ``observe``.
    """

    def __init__(self, *, config: RecheckConfig, best_other_ms: float | None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.config = config
        self.clock = clock
        self.best_other_ms = best_other_ms
        self.window: deque[float] = deque(maxlen=config.window)
        self.requests_since = 0
        self.measured_at = clock()

    def restart(self, *, best_other_ms: float | None) -> None:
        """After a measurement: new figures, an empty window, the cooldown from now."""
        self.best_other_ms = best_other_ms
        self.window.clear()
        self.requests_since = 0
        self.measured_at = self.clock()

    @property
    def running_median_ms(self) -> float | None:
        return statistics.median(self.window) if self.window else None

    def observe(self, ms: float) -> bool:
        """Add one request's time; True when a re-measurement is due."""
        self.window.append(ms)
        self.requests_since += 1
        c = self.config
        if self.best_other_ms is None or len(self.window) < c.min_samples:
            return False
        if self.requests_since < c.min_requests_between or self.clock() - self.measured_at < c.min_seconds_between:
            return False
        return self.running_median_ms > c.slow_factor * self.best_other_ms


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
