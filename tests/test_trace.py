"""Replayed arrival traces (process: trace) on both engines."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from conftest import TEST_LEVEL, assert_little
from scipy import stats as st
from typer.testing import CliRunner

from paysim import analytic
from paysim.cli import app
from paysim.errors import ScenarioError
from paysim.runner import simulate
from paysim.scenario import load_scenario

ENGINES = ("simpy", "fast")


def _write_trace(path, values, header="ts") -> None:
    path.write_text(header + "\n" + "\n".join(str(v) for v in values) + "\n", encoding="utf-8")


def _scenario(tmp_path, arrival: str, stations: str, horizon: float, replications: int = 2, name: str = "s.yaml",
              seed: int = 5):
    path = tmp_path / name
    path.write_text(f"horizon: {horizon}\nreplications: {replications}\nseed: {seed}\n"
                    f"arrivals:\n  a: {arrival}\nstations:\n{stations}", encoding="utf-8")
    return load_scenario(path)


def _alternating(pairs: int, short: float = 0.2, long: float = 1.8) -> list[float]:
    """Arrivals in pairs: gaps short, long, short, long ... (mean gap 1 s)."""
    gaps = [short, long] * pairs
    return list(np.concatenate([[0.0], np.cumsum(gaps[:-1])]))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("network", [False, True], ids=["one-station", "network"])
def test_deterministic_trace_gives_the_exact_waits(tmp_path, engine, network):
    # service 1 s against gaps 0.2, 1.8: every second customer waits 0.8 s, so Wq = 0.4 s exactly
    # (one station runs the recursion on the compiled engine, two stations its event loop)
    _write_trace(tmp_path / "arrivals.csv", _alternating(50))
    stations = "  pay: {service: 1s, next: log}\n  log: {service: 0.1s}\n" if network else "  pay: {service: 1s}\n"
    model = _scenario(tmp_path, "{process: trace, file: arrivals.csv, column: ts}", stations, horizon=120)
    result = simulate(model, jobs=1, engine=engine)
    assert result.engine == engine
    for row in result.rows:   # every replication replays the same trace: the same numbers
        assert row["stations.pay.Wq"] == pytest.approx(0.4, abs=1e-9)
        assert row["stations.pay.W"] == pytest.approx(1.4, abs=1e-9)
        assert row["streams.a.arrival_rate"] * 120 == pytest.approx(100)
        if network:
            assert row["stations.log.Wq"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("engine", ENGINES)
def test_speed_halves_the_gaps(tmp_path, engine):
    # at 2x the gaps are 0.1 and 0.9 s; with service 0.5 s every second customer waits 0.4 s: Wq = 0.2 s
    recorded = _alternating(40)
    _write_trace(tmp_path / "arrivals.csv", recorded)
    model = _scenario(tmp_path, "{process: trace, file: arrivals.csv, column: ts, speed: 2x}",
                      "  pay: {service: 0.5s}\n", horizon=60)
    assert model.arrivals["a"].rate == pytest.approx(2 * (len(recorded) - 1) / recorded[-1])
    assert np.diff(model.arrivals["a"].trace.times)[:2] == pytest.approx([0.1, 0.9])
    result = simulate(model, jobs=1, engine=engine)
    assert [row["stations.pay.Wq"] for row in result.rows] == pytest.approx([0.2, 0.2], abs=1e-9)


def test_absolute_times_start_at_zero(tmp_path):
    # the same trace as ISO-8601 text, epoch milliseconds (unit: ms) and relative seconds (a bare number speed)
    start = datetime(2026, 11, 30, 14, 0, tzinfo=timezone.utc)
    relative = [0.0, 0.25, 1.5, 1.5, 4.0]
    (tmp_path / "iso.csv").write_text("when\n" + "\n".join(
        (start + timedelta(seconds=t)).isoformat().replace("+00:00", "Z") for t in relative) + "\n")
    _write_trace(tmp_path / "ms.csv", [int(start.timestamp() * 1000 + t * 1000) for t in relative])
    _write_trace(tmp_path / "rel.csv", relative)
    times = []
    for arrival in ("{process: trace, file: iso.csv, column: when}",
                    "{process: trace, file: ms.csv, column: ts, unit: ms}",
                    "{process: trace, file: rel.csv, column: 0, speed: 1}"):
        times.append(_scenario(tmp_path, arrival, "  pay: {service: 1ms}\n", horizon=10).arrivals["a"].trace.times)
    for replayed in times:
        assert list(replayed) == pytest.approx(relative)


def test_relative_times_keep_their_offset(tmp_path):
    _write_trace(tmp_path / "rel.csv", [0.5, 1.0, 2.0])
    trace = _scenario(tmp_path, "{process: trace, file: rel.csv}", "  pay: {service: 1ms}\n", horizon=10).arrivals["a"].trace
    assert list(trace.times) == [0.5, 1.0, 2.0]
    assert trace.rate == pytest.approx(2 / 1.5)


def _poisson_trace(path, rate: float, duration: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.exponential(1 / rate, int(rate * duration * 1.2)))
    _write_trace(path, np.round(times[times < duration], 9))


@pytest.mark.slow
def test_poisson_trace_through_mmc_matches_erlang_c(tmp_path):
    # Each replication replays the same trace, so its CI covers only the service's randomness; an
    # honest comparison with Erlang C needs independent traces: 16 Poisson traces (rate 8/s, 2500 s),
    # one replication each, M/M/2 at 80% load. The 99.9% t-interval of Wq over the traces has a
    # half-width of about 11% of Erlang C's 0.356 s (so it detects a bias of that size, e.g. a trace
    # replayed at the wrong speed: 10% faster raises Wq by about 60%); Little's law is checked on every run.
    rate, mean_s, workers, duration = 8.0, 0.2, 2, 2500.0
    waits = []
    for k in range(16):
        _poisson_trace(tmp_path / f"p{k}.csv", rate, duration, seed=100 + k)
        model = _scenario(tmp_path, f"{{process: trace, file: p{k}.csv, column: ts}}",
                          f"  pool: {{workers: {workers}, service: {{dist: exponential, mean: {mean_s}}}}}\n",
                          horizon=duration, replications=1, name=f"p{k}.yaml", seed=k)  # independent services too
        result = simulate(model, jobs=1, engine="fast")
        assert_little(result)
        waits.append(result.rows[0]["stations.pool.Wq"])
    theory = analytic.mmc(rate, 1 / mean_s, workers).Wq
    mean, sem = np.mean(waits), np.std(waits, ddof=1) / math.sqrt(len(waits))
    half = st.t.ppf((1 + TEST_LEVEL) / 2, len(waits) - 1) * sem
    assert abs(mean - theory) <= half, f"Wq {mean:.4g} ± {half:.3g} against Erlang C {theory:.4g}"


def test_engines_agree_on_a_random_service(tmp_path):
    # the same Poisson trace through M/M/2 on both engines; both replay identical arrivals, so their
    # means estimate the same conditional expectation: Welch's 99.9% interval on the difference of
    # the mean waits, Bonferroni-corrected over the two metrics compared
    _poisson_trace(tmp_path / "p.csv", 8.0, 300.0, seed=7)
    model = _scenario(tmp_path, "{process: trace, file: p.csv, column: ts}",
                      "  pool: {workers: 2, service: {dist: exponential, mean: 0.2}}\n", horizon=300, replications=8)
    results = {engine: simulate(model, jobs=1, engine=engine) for engine in ENGINES}
    for metric in ("stations.pool.Wq", "stations.pool.L"):
        a, b = ([row[metric] for row in results[engine].rows] for engine in ENGINES)
        test = st.ttest_ind(a, b, equal_var=False)
        assert test.pvalue > (1 - TEST_LEVEL) / 2, f"{metric}: simpy {np.mean(a):.4g} vs fast {np.mean(b):.4g}"
    arrived = {engine: [row["streams.a.arrival_rate"] for row in results[engine].rows] for engine in ENGINES}
    assert arrived["simpy"] == arrived["fast"] == [arrived["fast"][0]] * 8   # the same trace every time


def test_a_trace_longer_than_the_horizon_stops_at_the_horizon(tmp_path):
    _write_trace(tmp_path / "t.csv", np.arange(0, 100, 0.5))
    model = _scenario(tmp_path, "{process: trace, file: t.csv}", "  pay: {service: 0.1s}\n", horizon=10)
    for engine in ENGINES:
        assert {row["streams.a.arrival_rate"] * 10 for row in simulate(model, jobs=1, engine=engine).rows} == {20}


def test_a_short_trace_warns_and_has_no_theory(tmp_path):
    _write_trace(tmp_path / "t.csv", [0, 1, 2, 3])
    path = tmp_path / "s.yaml"
    path.write_text("horizon: 60\nreplications: 2\narrivals:\n  a: {process: trace, file: t.csv}\n"
                    "stations:\n  pay: {service: 0.1s}\n")
    result = CliRunner().invoke(app, ["run", str(path), "-q", "-j", "1", "--compare"])
    assert result.exit_code == 0, result.output
    assert "ends at 3 s, before the horizon (60 s)" in result.stderr
    from paysim.theory import analyse
    assert "ends at 3 s" in analyse(load_scenario(path)).stations["pay"].reason


@pytest.mark.parametrize("arrival, csv, key, expected", [
    ("{process: trace, file: nothere.csv}", None, "arrivals.a.file", "cannot read"),
    ("{process: trace, file: t.csv, column: when}", "ts\n1\n2\n", "arrivals.a.column", "no column 'when'"),
    ("{process: trace, file: t.csv}", "ts\n1\n3\n2\n", "arrivals.a.file", "line 4: expected arrival times that never decrease"),
    ("{process: trace, file: t.csv}", "ts\n1\nsoon\n", "arrivals.a.file", "line 3: expected a number"),
    ("{process: trace, file: t.csv}", "ts\n2026-11-30T14:00:00Z\n14:05\n", "arrivals.a.file", "ISO-8601"),
    ("{process: trace, file: t.csv}", "ts\n1\n", "arrivals.a.file", "at least two different arrival times"),
    ("{process: trace, file: t.csv}", "ts\n-1\n2\n", "arrivals.a.file", "0 or more"),
    ("{process: trace, file: t.csv, rate: 5/s}", "ts\n1\n2\n", "arrivals.a.rate", "brings its own arrival times"),
    ("{process: trace}", None, "arrivals.a.file", "required with process: trace"),
    ("{rate: 5/s, file: t.csv}", "ts\n1\n2\n", "arrivals.a.file", "give 'process: trace' too"),
    ("{process: trace, file: t.csv, speed: fast}", "ts\n1\n2\n", "arrivals.a.speed", "replay speed above zero"),
    ("{process: trace, file: t.csv, speed: 0x}", "ts\n1\n2\n", "arrivals.a.speed", "replay speed above zero"),
    ("{process: trace, file: t.csv, speed: 1e-320}", "ts\n0\n1\n", "arrivals.a.speed", "keeps the times"),
    ("{process: trace, file: t.csv, unit: minutes}", "ts\n1\n2\n", "arrivals.a.unit", "expected a time unit"),
    ("{process: trace, file: t.csv, unit: ms}", "ts\n2026-11-30T14:00:00Z\n2026-11-30T14:00:01Z\n",
     "arrivals.a.unit", "leave out 'unit'"),
])
def test_bad_traces_get_one_line_naming_file_and_key(tmp_path, arrival, csv, key, expected):
    if csv is not None:
        (tmp_path / "t.csv").write_text(csv)
    path = tmp_path / "s.yaml"
    path.write_text(f"horizon: 10\narrivals:\n  a: {arrival}\nstations:\n  pay: {{service: 0.1s}}\n")
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    assert len(str(raised.value).splitlines()) == 1, str(raised.value)
    result = CliRunner().invoke(app, ["run", str(path), "-q"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{path}:3: {key}: " in lines[0] and expected in lines[0], result.stderr


def test_a_sweep_over_speed_warns_where_the_trace_stops(tmp_path):
    _write_trace(tmp_path / "t.csv", np.arange(10.0))     # 0 .. 9 s: ends one gap before a 10 s horizon
    (tmp_path / "s.yaml").write_text("horizon: 10\nreplications: 2\narrivals:\n  a: {process: trace, file: t.csv}\n"
                                     "stations:\n  pay: {service: 0.1s}\n")
    (tmp_path / "sweep.yaml").write_text("sweep:\n  scenario: s.yaml\n  vary:\n    arrivals.a.speed: [1x, 2x]\n")
    result = CliRunner().invoke(app, ["sweep", str(tmp_path / "sweep.yaml"), "--out", str(tmp_path / "out"),
                                      "-q", "-j", "1", "--no-plots"])
    assert result.exit_code == 0, result.output
    assert "a replayed trace ends before the horizon at 1 point (1)" in result.stderr
    rows = (tmp_path / "out" / "results.csv").read_text().splitlines()
    assert len(rows) == 3
