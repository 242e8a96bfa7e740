"""Named windows (``windows: {flash_sale: [20m, 25m]}``): validation, the replay that measures
them, their statistics against the whole run, both engines, and how they are reported."""

from __future__ import annotations

import json
import math

import pytest
from conftest import TEST_LEVEL, interval, scenario
from test_fast_engine import _compare
from typer.testing import CliRunner

from paysim.cli import app
from paysim.engine.compiled import recursion
from paysim.runner import replicate, simulate
from paysim.stats import estimate

EXP = {"dist": "exponential", "mean": 0.1}
MMC = ({"s": {"workers": 5, "service": EXP}}, {"a": {"rate": 40}})     # M/M/5 at 80%


def _with_windows(model, windows):
    return model.model_copy(update={"windows": windows})


@pytest.mark.parametrize("engine,kernel", [("simpy", None), ("fast", "recursion"), ("fast", "events")])
def test_a_window_over_the_measurement_window_replays_the_run_exactly(engine, kernel, monkeypatch):
    """The window is measured by replaying the replication: over [warm-up, horizon] it must give
    the whole run's numbers to the last bit, or the replay is not the same sample path."""
    if kernel == "events":
        monkeypatch.setattr(recursion, "fits", lambda _: False)
    model = _with_windows(scenario(*MMC, horizon=60, warmup=5), {"all": (5.0, 60.0)})
    row = replicate(model, 11, 2, engine=engine)
    whole = {name: value for name, value in row.items() if not name.startswith("windows.")}
    window = {name.removeprefix("windows.all."): value for name, value in row.items() if name.startswith("windows.")}
    assert whole.keys() == window.keys()
    assert all(whole[n] == window[n] or (math.isnan(whole[n]) and math.isnan(window[n])) for n in whole)


WINDOWED = ("system.throughput", "system.W", "system.latency.p99", "stations.s.utilization", "stations.s.Lq",
            "system.failure_rate")


def test_windows_of_a_stationary_mmc_agree_with_the_whole_run():
    """In steady state a window's mean equals the whole run's. Paired by replication (the window
    is part of the run), the difference's 99.9% interval, Bonferroni-corrected over the metrics
    and windows, must contain 0; with 30 replications of 300 s it detects a bias of a few
    percent in throughput and about 10% in W (the half-widths printed on failure)."""
    model = _with_windows(scenario(*MMC, horizon=300, warmup=20, replications=30),
                          {"early": (20.0, 100.0), "late": (200.0, 300.0)})
    result = simulate(model, jobs=1, engine="fast")
    tests = [(w, m) for w in model.windows for m in WINDOWED if m != "system.failure_rate"]
    level = 1 - (1 - TEST_LEVEL) / len(tests)
    for window, metric in tests:
        differences = [row[f"windows.{window}.{metric}"] - row[metric] for row in result.rows]
        ci = estimate(differences, level)
        assert ci.low <= 0 <= ci.high, f"{window} {metric}: window - whole = {ci.mean:.4g}, CI [{ci.low:.4g}, {ci.high:.4g}]"
    for window in model.windows:   # an unbounded queue with no timeouts loses nothing in any window
        assert result.summary[f"windows.{window}.system.failure_rate"].mean == 0


def test_a_window_in_the_flash_sale_shows_its_rate():
    """A profile doubles the rate in [100 s, 150 s]: that window's arrival rate has 80/s in its
    99.9% CI, and lies above the whole run's, whose rate is diluted by the quiet periods."""
    stations = {"s": {"workers": 12, "service": EXP}}
    arrivals = {"a": {"rate": 40, "profile": [{"at": 0, "x": 1}, {"at": 100, "x": 2}, {"at": 150, "x": 1}]}}
    model = _with_windows(scenario(stations, arrivals, horizon=250, warmup=10, replications=10),
                          {"flash_sale": (100.0, 150.0)})
    result = simulate(model, jobs=1, engine="fast")
    flash = interval(result, "windows.flash_sale.system.arrival_rate")
    whole = interval(result, "system.arrival_rate")
    assert flash.low <= 80 <= flash.high
    assert flash.low > whole.high
    assert interval(result, "windows.flash_sale.stations.s.utilization").low > interval(result, "stations.s.utilization").high


def test_engines_agree_on_windows():
    """The same window on the SimPy engine and compiled: equal in distribution (as in
    test_fast_engine, Bonferroni over every metric)."""
    stations = {"s": {"workers": 3, "service": EXP, "next": {"t": 0.5, "done": 0.5}}, "t": {"service": {"dist": "exponential", "mean": 0.05}}}
    arrivals = {"a": {"rate": 20, "profile": [{"at": 0, "x": 1}, {"at": 60, "x": 1.4}, {"at": 90, "x": 1}]}}
    model = _with_windows(scenario(stations, arrivals, horizon=120, warmup=10, replications=12),
                          {"peak": (60.0, 90.0)})
    reference, fast = simulate(model, jobs=1, engine="simpy"), simulate(model, jobs=1, engine="fast")
    assert any(name.startswith("windows.peak.stations.t.") for name in fast.summary)
    assert _compare(reference, fast) == []


def test_windows_are_reported_beside_the_whole_run(tmp_scenario):
    path = tmp_scenario("horizon: 60s\nwarmup: 5s\nreplications: 3\nwindows: {busy: [20s, 40s]}\n"
                        "arrivals: {a: {rate: 30/s}}\nstations: {s: {workers: 4, service: 100ms}}\n")
    result = CliRunner().invoke(app, ["run", str(path), "--json", "-q"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    window = data["windows"]["busy"]
    assert set(window) == {"system", "stations", "streams"}
    assert window["system"]["throughput"]["mean"] > 0 and "utilization" in window["stations"]["s"]
    assert "latency" in window["streams"]["a"] and "failure_rate" in window["streams"]["a"]
    table = CliRunner().invoke(app, ["run", str(path), "-q"])
    assert "window busy [20.0 s, 40.0 s]" in table.stdout


@pytest.mark.parametrize("windows,message", [
    ("{sale: [25m, 20m]}", "windows.sale: expected 0 <= start < end"),
    ("{sale: [20m, 40m]}", "windows.sale: must end within the horizon (1800s)"),
    ("{sale: 20m}", "windows.sale: expected [start, end]"),
    ("{sale: [20m]}", "windows.sale: expected [start, end]"),
    ("{sale: [20m, 25m], sale: [1m, 2m]}", "duplicate key"),
    ("{'a.b': [1m, 2m]}", "without dots"),
])
def test_bad_windows_are_refused_with_one_line(tmp_scenario, windows, message):
    path = tmp_scenario(f"horizon: 30m\nwindows: {windows}\narrivals: {{a: {{rate: 5/s}}}}\n"
                        "stations: {s: {service: 10ms}}\n")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output, result.output


def test_a_shorter_horizon_on_the_command_line_is_checked_against_the_windows(tmp_scenario):
    path = tmp_scenario("horizon: 30m\nwindows: {sale: [20m, 25m]}\narrivals: {a: {rate: 5/s}}\n"
                        "stations: {s: {service: 10ms}}\n")
    result = CliRunner().invoke(app, ["run", str(path), "--horizon", "10m", "-q"])
    assert result.exit_code == 2 and "windows.sale: must end within the horizon (600s)" in result.stderr
