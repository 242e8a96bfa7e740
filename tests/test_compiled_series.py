"""The time series (``--out``) sampled by the compiled engine, against the SimPy engine's.

Engine comparisons: the engines draw different random numbers, so each series value of
each interval is compared as two independent samples over replications: the difference
of the means must lie within z·sqrt(se1² + se2²), z at a Bonferroni-corrected level (0.1%
shared across every (interval, column) compared), with a fixed seed. A true difference
of twice that bound lands beyond it with probability above 99%: the test states that
bound per column relative to the mean and asserts it stays below ``RESOLUTION``, so the
runs are long enough to catch a series sampled at the wrong instant, counted in the wrong
interval or missing the warm-up's carry-over (each moves its column by more than that).
A 3% bias within one 20 s interval is not affordable here (it would take some thousand
replications of each engine); the intervals are the whole run's metrics cut in pieces, and
those are compared engine against engine in tests/test_fast_engine.py.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import engine_differences, scenario
from typer.testing import CliRunner

from paysim.cli import app
from paysim.engine.compiled import recursion
from paysim.runner import simulate
from paysim.scenario import load_scenario

SCENARIOS = Path(__file__).parent.parent / "scenarios"
EXP = {"dist": "exponential", "mean": 0.05}
PROFILE = [{"at": 40, "x": 1.3}, {"at": 80, "x": 1}]
CASES = {   # the event loop: a network with a rate profile, a slowdown, timeouts and retries
    "network": ({"s": {"workers": 2, "service": EXP, "next": {"t": 0.5, "done": 0.5},
                       "slowdowns": [{"at": 60, "for": 30, "factor": 1.5}]},
                 "t": {"workers": 1, "service": {"dist": "exponential", "mean": 0.06}}},
                {"rate": 15, "profile": PROFILE, "timeout": 0.5,   # a budget: no metastable retry storm
                 "retry": {"attempts": 2, "backoff": "exponential", "base": 0.1, "on": "timeout", "budget": "5%"}}),
    # the single-station recursion: a profile, a bounded queue, errors and cancelled timeouts
    "single": ({"s": {"workers": 2, "service": EXP, "queue": 6, "errors": 0.05, "on_timeout": "cancel"}},
               {"rate": 28, "profile": PROFILE, "timeout": 0.3}),
}
# the largest detectable relative difference allowed per column, in any interval: about 1.3
# times what the fixed seed gives with 80 replications (rates 4-9%, goodput up to 15% during
# the slowdown, the population 10-44%, the median latency 13-24%; instantaneous queues and
# the p99 of 20 s vary too much to state one)
RESOLUTION = {"system.arrival_rate": 0.11, "system.throughput": 0.12, "system.goodput": 0.2, "system.L": 0.6,
              "system.latency.p50": 0.32}
REPLICATIONS, INTERVAL = 80, 20.0


def _series(result) -> dict[str, np.ndarray]:
    """Per column, (replications, intervals)."""
    keys = [k for k in result.series[0][0] if k != "t"]
    return {k: np.array([[row[k] for row in rows] for rows in result.series], float) for k in keys}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_compiled_series_matches_simpy(case):
    stations, arrival = CASES[case]
    model = scenario(stations, {"a": arrival}, horizon=120, warmup=INTERVAL, replications=REPLICATIONS)
    assert recursion.fits(model) == (case == "single")
    reference = simulate(model, jobs=1, engine="simpy", series_interval=INTERVAL)
    compiled = simulate(model, jobs=1, engine="fast", series_interval=INTERVAL)
    assert compiled.engine == "fast"
    assert [[row["t"] for row in rows] for rows in compiled.series] == \
           [[row["t"] for row in rows] for rows in reference.series]
    assert list(compiled.series[0][0]) == list(reference.series[0][0])   # the same columns, in the same order
    x_all, y_all = _series(reference), _series(compiled)
    problems, cell_detectable = engine_differences({(k, j): (x_all[k][:, j], y_all[k][:, j])
                                                    for k in x_all for j in range(x_all[k].shape[1])}, floor=1e-12)
    detectable: dict[str, float] = {}
    for (key, _), value in cell_detectable.items():
        if key in RESOLUTION:
            detectable[key] = max(detectable.get(key, 0.0), value)
    assert problems == []
    coarse = {k: f"{v:.1%}" for k, v in detectable.items() if v > RESOLUTION[k]}
    assert not coarse, f"runs too short to detect the stated differences: {coarse}"
    # every feature is exercised: failures, and in the network retries, show in the series
    assert y_all["system.failures_per_s"].mean() > 0.1
    assert case == "single" or y_all["system.retries_per_s"].mean() > 0.1


@pytest.mark.parametrize("engine", ["fast", "simpy"])
@pytest.mark.parametrize("case", list(CASES))
def test_sampling_changes_no_number(case, engine):
    """The series draws no random number, the compiled engine's adds no event, and neither
    advances an integral of the run: every metric of every replication is the same to the
    last bit with and without it."""
    stations, arrival = CASES[case]
    model = scenario(stations, {"a": arrival}, horizon=120, warmup=13.3, replications=3)
    sampled = simulate(model, jobs=1, engine=engine, series_interval=7.0)
    plain = simulate(model, jobs=1, engine=engine)
    assert sampled.rows == plain.rows
    assert len(sampled.series[0]) == 17 and not plain.series


SAME_PATH = {   # exponential draws only, and no errors in the recursion (it draws them in arrival order)
    "network": CASES["network"],
    "single": ({"s": {"workers": 2, "service": EXP, "queue": 6, "on_timeout": "cancel"}},
               {"rate": 28, "profile": PROFILE, "timeout": 0.3}),
}


@pytest.mark.parametrize("case", list(SAME_PATH))
def test_series_are_the_same_on_the_same_random_numbers(case):
    """Both engines draw each component's numbers from the same generator in the same order
    (tests/test_engines_identical.py): one replication follows one sample path, and every
    value of its series must agree to rounding, sample by sample (a warm-up mid-interval)."""
    stations, arrival = SAME_PATH[case]
    model = scenario(stations, {"a": arrival}, horizon=120, warmup=13.3, replications=1)
    assert recursion.fits(model) == (case == "single")
    rows = [simulate(model, jobs=1, engine=engine, series_interval=7.0).series[0] for engine in ("fast", "simpy")]
    assert [list(row) for row in rows[0]] == [list(row) for row in rows[1]]
    differ = [(row["t"], key, value, other[key]) for row, other in zip(*rows) for key, value in row.items()
              if not (math.isclose(value, other[key], rel_tol=1e-9, abs_tol=1e-9)
                      or (math.isnan(value) and math.isnan(other[key])))]
    assert not differ, differ[:10]
    assert sum(row["system.failures_per_s"] for row in rows[0]) > 0


def test_series_counts_carry_across_the_warm_up():
    """Rates count from time 0 whatever the warm-up: deterministic arrivals at 10/s give
    exactly 10/s in every interval, before and after the warm-up (mid-interval at 13.3 s),
    on both kernels; the event loop's counts are reset at the warm-up, so this catches a
    lost carry-over."""
    for stations in ({"s": {"service": 0.02}},
                     {"s": {"service": 0.02, "next": {"t": 1.0}}, "t": {"service": 0.01}}):
        model = scenario(stations, {"a": {"rate": 10, "process": "deterministic"}}, horizon=60, warmup=13.3,
                         replications=1)
        rows = simulate(model, jobs=1, engine="fast", series_interval=5.0).series[0]
        assert [row["t"] for row in rows] == [5.0 * k for k in range(1, 13)]
        assert [row["system.arrival_rate"] for row in rows] == pytest.approx([10.0] * 12, abs=0.2 + 1e-9)
        assert sum(row["system.arrival_rate"] * 5 for row in rows) == pytest.approx(600, abs=1)
        # each request stays the service times, alone: L = 10/s × its stay
        stay = sum(s["service"] for s in stations.values())
        assert [row["system.L"] for row in rows[1:-1]] == pytest.approx([10 * stay] * 10, rel=1e-6)


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_run_with_and_without_out_gives_the_same_numbers(tmp_path):
    """`run --out` keeps the compiled engine and its numbers; its time series is written."""
    path = SCENARIOS / "mmck.yaml"
    short = ["--horizon", "60s", "--warmup", "5s", "-r", "3", "-q", "--json"]
    with_out = _invoke("run", str(path), *short, "--out", str(tmp_path / "out"))
    without = _invoke("run", str(path), *short)
    assert with_out.exit_code == 0 and without.exit_code == 0, with_out.output + without.output
    a, b = json.loads(with_out.stdout), json.loads(without.stdout)
    assert a["run"]["engine"] == b["run"]["engine"] == "fast"
    for data in (a, b):
        del data["run"]["wall_s"]
    assert a == b
    with (tmp_path / "out" / "timeseries.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) >= 100 and all(float(row["system.throughput"]) > 0 for row in rows)


def test_named_windows_run_compiled_with_out(tmp_path, tmp_scenario):
    path = tmp_scenario("horizon: 60s\nwarmup: 5s\nreplications: 3\nwindows: {busy: [20s, 40s]}\n"
                        "arrivals: {a: {rate: 30/s, profile: [{at: 20s, x: 1.5}, {at: 40s, x: 1}]}}\n"
                        "stations: {s: {workers: 4, service: 100ms}}\n")
    result = _invoke("run", str(path), "--json", "-q", "--out", str(tmp_path / "out"), "--interval", "5s")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["run"]["engine"] == "fast"
    inside, whole = data["windows"]["busy"]["system"]["arrival_rate"]["mean"], data["system"]["arrival_rate"]["mean"]
    assert inside > 1.2 * whole      # the window is the profile's peak
    assert (tmp_path / "out" / "timeseries.png").stat().st_size > 10_000


RUNNABLE = sorted(p.name for p in SCENARIOS.glob("*.yaml") if "sweep:" not in p.read_text())


@pytest.mark.parametrize("name", RUNNABLE)
def test_every_scenario_runs_compiled_with_out(name, tmp_path):
    """`auto` picks the compiled engine for every scenario also when a time series is asked
    for; the table says so on its engine line."""
    horizon = min(60.0, load_scenario(SCENARIOS / name).horizon)
    result = _invoke("run", str(SCENARIOS / name), "--horizon", f"{horizon:g}s", "--warmup", "0s", "-r", "2",
                     "-q", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "engine: fast (compiled; the scenario fits it)" in result.stdout
    assert (tmp_path / "timeseries.csv").exists()
