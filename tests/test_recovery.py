"""Recovery after a disturbance (paysim.recovery): the band, the sustained return, "did not
recover", on both engines alike, and on the time-series figure."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from conftest import SEED, scenario

from paysim import recovery
from paysim.engine.compiled import unsupported
from paysim.runner import simulate
from paysim.scenario import load_scenario
from paysim.series_plot import series_figure, timeline

EXP = {"dist": "exponential", "mean": 0.05}


def _outage_model(**station) -> object:
    return scenario({"pool": {"workers": 2, "service": EXP, "outages": [{"at": 60, "for": 20, "mode": "hang"}],
                              **station}}, {"req": {"rate": 32}}, horizon=240.0, warmup=0.0, replications=3)


def _series(queue: list[float], p99: list[float] | None = None, step: float = 2.0) -> list[dict[str, float]]:
    return [{"t": step * (k + 1), "stations.pool.queue": q, "system.failures_per_s": 0.0,
             "system.latency.p99": (p99 or [0.1] * len(queue))[k]} for k, q in enumerate(queue)]


def test_recovery_is_the_first_sustained_return_to_the_pre_disturbance_band():
    model = _outage_model()
    assert recovery.interval(model) == 2.0 and recovery.baseline_samples(model) == 30
    baseline = [0, 1, 2, 1, 0, 3, 1, 0, 2, 1] * 3                    # the band: its 95th percentile, 3
    after = [40, 30, 20, 2, 9, 1, 2, 3, 5, 1, 1, 1] + [0] * 68    # t = 82, 84, ...: within 3 at t=88, but for
    row = recovery.recovery_row(model, _series(baseline + [50] * 10 + after))   # 3 samples in a row only from t=92
    assert row == {"stations.pool.recovery_time": 92.0 - 80.0, "stations.pool.not_recovered": 0.0}
    # a latency beyond its band, or an interval without successes (NaN), is not normal either
    p99 = [0.1] * 46 + [5.0, 0.1, math.nan] + [0.1] * 71            # out at t=94 and t=98
    row = recovery.recovery_row(model, _series(baseline + [50] * 10 + after, p99))
    assert row["stations.pool.recovery_time"] == 100.0 - 80.0


def test_a_queue_that_stays_high_did_not_recover_and_is_counted():
    model = _outage_model()
    row = recovery.recovery_row(model, _series([1.0] * 30 + [50.0] * 88 + [0.0, 0.0]))   # back only 2 samples
    assert math.isnan(row["stations.pool.recovery_time"]) and row["stations.pool.not_recovered"] == 1.0
    notes = recovery.recovery_notes(model, [row, {**row, "stations.pool.not_recovered": 0.0}])
    assert notes == [("stations.pool.recovery_time (after pool hang, 60s to 80s): did not recover within the "
                     "horizon in 1 of 2 replications; the mean and CI are over the 1 that did")]


def test_no_band_without_samples_before_the_first_disturbance():
    model = _outage_model(outages=[{"at": 4, "for": 20}])
    assert recovery.recovery_row(model, _series([0.0] * 120)) == {}
    (note,) = recovery.recovery_notes(model, [{}])
    assert "not measured, only 2 samples (every 2s) before the first disturbance at 4s" in note


def test_surges_in_a_profile_and_several_disturbances_per_station():
    model = scenario({"a": {"service": EXP, "next": "b", "slowdowns": [{"at": 150, "for": 5, "factor": 2},
                                                                      {"at": 100, "for": 10, "factor": 3}]},
                      "b": {"service": EXP}, "c": {"service": EXP}},
                     {"s": {"rate": 5, "profile": [{"at": 0, "x": 1}, {"at": 50, "x": 2}, {"at": 60, "x": 3},
                                                    {"at": 70, "x": 1}, {"at": 200, "x": 1.5}]}},
                     horizon=240.0, warmup=0.0)
    found = {(d.key, d.start, d.end, d.stations) for d in recovery.disturbances(model)}
    assert found == {("stations.a.recovery_time", 100, 110, ("a",)), ("stations.a.recovery_time_2", 150, 155, ("a",)),
                     ("streams.s.recovery_time", 50, 70, ("a", "b"))}
    assert any("ends above its starting rate" in note for note in recovery.recovery_notes(model, []))


def test_both_engines_report_the_same_recovery_and_it_follows_the_drain():
    """The same sample path gives the same series, so the same recovery on both engines. And
    after a hang outage of T = 20 s at λ = 32/s, c·μ = 40/s, the λT = 640 queued drain in about
    λT/(cμ−λ) = 80 s, after which queue and latency are back: the mean recovery lies within a
    few sampling intervals of that (not an exact law: the band and the sustained return add a
    little; measuring from the outage's start instead of its end would add 20 s)."""
    model = _outage_model()
    assert unsupported(model) is None
    fast = simulate(model, seed=SEED, engine="fast", jobs=1)
    simpy = simulate(model, seed=SEED, engine="simpy", jobs=1)
    key = "stations.pool.recovery_time"
    assert [r[key] for r in fast.rows] == [r[key] for r in simpy.rows]
    times = np.array([r[key] for r in fast.rows])
    assert np.isfinite(times).all() and 70 <= times.mean() <= 95, times


def test_a_retry_storm_says_it_did_not_recover():
    model = load_scenario(Path(__file__).parent.parent / "scenarios" / "retry-storm.yaml", {"horizon": "5m"})
    result = simulate(model, replications=2, engine="fast", jobs=1)
    assert all(r["stations.api.not_recovered"] == 1.0 for r in result.rows)
    assert math.isnan(result.summary["stations.api.recovery_time"].mean)
    assert any("did not recover within the horizon in any of the 2 replications" in note for note in result.notes)
    marks = recovery.marks(model, result.summary)
    assert marks == [{"label": "api x3", "end": 120.0, "mean": None, "not_recovered": 1.0}]
    figure = series_figure([
        {**row, "system.arrival_rate": 1.0, "system.throughput": 1.0, "system.goodput": 1.0,
         "system.retries_per_s": 0.0, "system.L": 1.0, "system.latency.p50": 0.01, "stations.api.queue": 1.0,
         "stations.api.busy": 1.0} for row in _series([0.0] * 150)],
        "storm", {**timeline(model), "recovery": marks + [{"label": "x", "end": 200.0, "mean": 30.0,
                                                           "not_recovered": 0.5}]})
    texts = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert "did not recover" in texts and "recovered after 30 s (50% did not)" in texts
    plt.close(figure)


def test_disturbances_beyond_the_horizon_are_not_measured():
    model = _outage_model(outages=[{"at": 200, "for": 60}], slowdowns=[{"at": 300, "for": 10, "factor": 2}])
    assert recovery.disturbances(model) == [] and recovery.interval(model) is None
    assert recovery.recovery_notes(model, [{}]) == [
        "stations.pool.recovery_time (after pool refuse, 200s to 260s): not measured, it lasts to the horizon"]
