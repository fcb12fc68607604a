"""segment.autoselect on its own: interleaved rounds, the rule for adding rounds, the live monitor.

Every timing here comes from a fake clock that the fake candidates advance, so the
figures are exact whatever the machine is doing.
"""

import statistics

import pytest

from segment.autoselect import AutoConfig, LiveMonitor, MeasureConfig, RecheckConfig, Timing, measure_interleaved, separated


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance_ms(self, ms: float) -> None:
        self.now += ms / 1e3


def candidates_with_a_noisy_start(clock, *, slow_calls=4, factor=4.0, costs=None):
    """Two candidates, A truly faster (4 ms) than B (6 ms); the machine's first ``slow_calls``
    calls, whoever makes them, cost ``factor`` times more (a neighbour's burst, a cold cache)."""
    costs = costs or {"A": 4.0, "B": 6.0}
    calls = [0]

    def runner(label):
        def run():
            calls[0] += 1
            clock.advance_ms(costs[label] * (factor if calls[0] <= slow_calls else 1.0))
        return run

    return {label: runner(label) for label in costs}


def one_off_sequential(runners, clock, *, warmup=1, runs=3):
    """The measurement auto used to make: each candidate on its own, right after the previous one,
    one warm-up and three timed runs; the fastest median wins."""
    medians = {}
    for label, run in runners.items():
        for _ in range(warmup):
            run()
        times = []
        for _ in range(runs):
            t0 = clock()
            run()
            times.append((clock() - t0) * 1e3)
        medians[label] = statistics.median(times)
    return min(medians, key=medians.get), medians


def test_interleaved_rounds_pick_the_truly_faster_where_a_one_off_series_is_misled():
    clock = FakeClock()
    winner, medians = one_off_sequential(candidates_with_a_noisy_start(clock), clock)
    assert winner == "B" and medians == pytest.approx({"A": 16.0, "B": 6.0})  # A was timed during the burst

    clock = FakeClock()
    m = measure_interleaved(candidates_with_a_noisy_start(clock), config=MeasureConfig(), clock=clock)
    assert m.fastest.label == "A"
    assert m.figures() == pytest.approx({"A": 4.0, "B": 6.0})  # the burst hit both candidates' first round alike
    assert m.separated and m.rounds == MeasureConfig().min_rounds


def test_each_round_runs_every_candidate_once_starting_one_further_along():
    clock, order = FakeClock(), []

    def runner(label):
        return lambda: order.append(label) or clock.advance_ms(1.0)

    measure_interleaved({k: runner(k) for k in "ABC"}, config=MeasureConfig(warmup_rounds=1, min_rounds=3, max_rounds=3),
                        clock=clock)
    rounds = ["".join(order[i:i + 3]) for i in range(0, len(order), 3)]
    assert rounds == ["ABC", "ABC", "BCA", "CAB"]  # warm-up, then three rotated timed rounds


def alternating(clock, costs: dict[str, list[float]]):
    """Candidates whose successive calls cost the given cycle of milliseconds."""
    calls = {label: 0 for label in costs}

    def runner(label):
        def run():
            cycle = costs[label]
            clock.advance_ms(cycle[calls[label] % len(cycle)])
            calls[label] += 1
        return run

    return {label: runner(label) for label in costs}


def test_rounds_are_added_while_the_two_fastest_are_close_and_overlap_up_to_the_cap():
    config = MeasureConfig(warmup_rounds=0, min_rounds=3, max_rounds=12)
    clock = FakeClock()
    close = measure_interleaved(alternating(clock, {"A": [9.0, 11.0], "B": [9.5, 11.5]}), config=config, clock=clock)
    assert close.rounds == 12 and not close.separated and close.fastest.label == "A"

    clock = FakeClock()
    apart = measure_interleaved(alternating(clock, {"A": [9.0, 11.0], "B": [19.0, 21.0]}), config=config, clock=clock)
    assert apart.rounds == 3 and apart.separated

    # 5% apart but each perfectly steady: the spreads do not overlap, so that 5% is real.
    clock = FakeClock()
    tight = measure_interleaved(alternating(clock, {"A": [10.0], "B": [10.5]}), config=config, clock=clock)
    assert tight.rounds == 3 and tight.separated and tight.fastest.label == "A"

    # A cap in time as well: rounds stop being added after max_seconds of timed rounds.
    clock = FakeClock()
    capped = measure_interleaved(alternating(clock, {"A": [90.0, 110.0], "B": [95.0, 115.0]}),
                                 config=MeasureConfig(warmup_rounds=0, min_rounds=3, max_rounds=100, max_seconds=1.0),
                                 clock=clock)
    assert capped.rounds == 5  # 5 rounds x ~0.2 s


def test_separated_compares_medians_then_spreads():
    a = Timing(label="a", times_ms=[10, 10, 11, 12])
    assert separated(a, Timing(label="b", times_ms=[20, 20, 21]), margin=0.10)
    assert not separated(a, Timing(label="b", times_ms=[10, 11, 12, 13]), margin=0.10)


def test_live_monitor_needs_a_full_window_a_slowdown_and_the_cooldown():
    clock = FakeClock()
    config = RecheckConfig(window=4, min_samples=4, slow_factor=1.25, min_requests_between=6, min_seconds_between=10.0)
    monitor = LiveMonitor(config=config, best_other_ms=20.0, clock=clock)
    clock.advance_ms(11_000)
    assert [monitor.observe(30.0) for _ in range(5)] == [False] * 5  # slow, but fewer than 6 requests yet
    assert monitor.observe(30.0)  # 6th request: 30 > 1.25 x 20
    assert monitor.running_median_ms == 30.0

    monitor.restart(best_other_ms=20.0)
    assert not any(monitor.observe(30.0) for _ in range(8))  # within 10 s of the last measurement
    clock.advance_ms(10_000)
    assert monitor.observe(30.0)

    monitor.restart(best_other_ms=20.0)
    clock.advance_ms(60_000)
    assert not any(monitor.observe(24.0) for _ in range(10))  # 24 ms is within 1.25 x 20
    assert not LiveMonitor(config=config, best_other_ms=None, clock=clock).observe(1e6)  # nothing to compare with


def test_auto_config_refuses_an_unknown_start():
    with pytest.raises(ValueError, match="background"):
        AutoConfig(start="later")
