"""The ``paysim`` command as a user runs it: output shapes, files, exit codes, help."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paysim import analytic
from paysim.cli import app

SCENARIOS = Path(__file__).parent.parent / "scenarios"
SHORT = ["--horizon", "20s", "--warmup", "2s", "-r", "3", "-q"]
PERCENTILES = ["p50", "p90", "p95", "p99", "p999"]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def _is_metric(node: object) -> bool:
    return (isinstance(node, dict) and set(node) == {"mean", "ci95"}
            and len(node["ci95"]) == 2 and node["ci95"][0] <= node["mean"] <= node["ci95"][1])


@pytest.fixture(scope="module")
def mmc_json() -> dict:
    result = invoke("run", str(SCENARIOS / "mmc.yaml"), *SHORT, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_json_has_every_scope_and_metric(mmc_json):
    assert {"system", "stations", "streams"} <= set(mmc_json)
    pool = mmc_json["stations"]["pool"]
    for name in ["throughput", "goodput", "utilization", "L", "Lq", "W", "Wq", "rejected", "rejection_rate"]:
        assert _is_metric(pool[name]), name
    for scope in [mmc_json["system"], pool, mmc_json["streams"]["requests"]]:
        assert [p for p in PERCENTILES if _is_metric(scope["latency"][p])] == PERCENTILES
    for name in ["failed", "failure_rate"]:
        assert _is_metric(mmc_json["system"][name])


def test_json_times_are_seconds(mmc_json):
    # mean service 20 ms: a sojourn time in seconds lies between that and a few times it
    assert 0.02 <= mmc_json["stations"]["pool"]["W"]["mean"] < 0.1
    assert mmc_json["run"]["seed"] == 42 and mmc_json["run"]["replications"] == 3


def test_out_writes_json_and_csv(tmp_path):
    result = invoke("run", str(SCENARIOS / "mmc.yaml"), *SHORT, "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    with (tmp_path / "out" / "results.csv").open() as handle:
        rows = {row["metric"]: row for row in csv.DictReader(handle)}
    wq = written["stations"]["pool"]["Wq"]
    assert float(rows["stations.pool.Wq"]["mean"]) == pytest.approx(wq["mean"])
    assert float(rows["stations.pool.Wq"]["ci95_low"]) == pytest.approx(wq["ci95"][0])
    assert "stations.pool.latency.p99" in rows


def test_table_output_names_every_scope():
    result = invoke("run", str(SCENARIOS / "mmc.yaml"), *SHORT)
    assert result.exit_code == 0, result.output
    for text in ["station pool", "stream requests", "Little's law", "L = λW"]:
        assert text in result.stdout


def test_validate_accepts_good_and_refuses_bad(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("horizon: 10 parsecs\narrivals: {a: {rate: 1/s}}\nstations: {s: {service: 1s}}\n")
    result = invoke("validate", str(SCENARIOS / "mmc.yaml"), str(bad))
    assert result.exit_code == 2
    assert "ok: " in result.stdout
    assert f"{bad}:1: horizon: expected a duration" in result.stderr
    assert "Traceback" not in result.output


def test_missing_file_is_a_clean_error(tmp_path):
    result = invoke("run", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "nope.yaml" in result.stderr and "Traceback" not in result.output


def test_overrides_are_validated(tmp_path):
    result = invoke("run", str(SCENARIOS / "mmc.yaml"), "--horizon", "soon")
    assert result.exit_code == 2
    assert "horizon" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("command", [[], ["run"], ["validate"], ["analytic"]])
def test_every_command_has_help(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0 and "Usage" in result.stdout


def test_analytic_json_gives_erlang_c():
    result = invoke("analytic", str(SCENARIOS / "mmc.yaml"), "--json")
    assert result.exit_code == 0, result.output
    pool = json.loads(result.stdout)["stations"]["pool"]
    assert pool["exact"] and "Erlang C" in pool["formula"]
    assert pool["Wq"] == pytest.approx(0.0040918, rel=1e-4)


def test_analytic_solves_a_jackson_network_exactly(tmp_path):
    """Two stations with feedback: the traffic equations by hand (lambda_a = 5 + 0.2 lambda_b,
    lambda_b = lambda_a, so 6.25/s each), then each station is an M/M/c at its own rate."""
    path = tmp_path / "jackson.yaml"
    path.write_text("horizon: 1h\narrivals: {pay: {rate: 5/s, enter: a}}\n"
                    "stations:\n  a: {workers: 2, service: {dist: exponential, mean: 100ms}, next: b}\n"
                    "  b: {workers: 1, service: {dist: exponential, mean: 80ms}, next: {a: 0.2, done: 0.8}}\n")
    result = invoke("analytic", str(path), "--json")
    assert result.exit_code == 0, result.output
    stations = json.loads(result.stdout)["stations"]
    for name, workers, mean in (("a", 2, 0.1), ("b", 1, 0.08)):
        rate, offered = 6.25, 6.25 * mean
        wq = analytic.erlang_c(workers, offered) * mean / (workers - offered)   # C / (c mu - lambda)
        expected = {"throughput": rate, "utilization": offered / workers, "Wq": wq, "W": wq + mean,
                    "Lq": rate * wq, "L": rate * (wq + mean)}
        assert stations[name]["exact"]
        assert {k: stations[name][k] for k in expected} == pytest.approx(expected, rel=1e-3)


def test_analytic_table_says_why_there_is_no_answer():
    result = invoke("analytic", str(SCENARIOS / "card-checkout.yaml"))
    assert result.exit_code == 0, result.output
    # a profile has no steady state: the base and the peak rate are analysed instead, and the
    # gateway (bounded queue, lognormal service) has no formula at either
    assert "steady state at the base rate" in result.stdout and "steady state at the peak rate" in result.stdout
    assert "non-exponential service" in result.stdout


def test_compare_puts_theory_beside_simulation():
    result = invoke("run", str(SCENARIOS / "mmc.yaml"), *SHORT, "--compare", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)["compare"]}
    wq = rows["stations.pool.Wq"]
    assert wq["theory"] == pytest.approx(0.0040918, rel=1e-4) and wq["exact"]
    assert set(wq["simulated"]) == {"mean", "ci95"}


def test_out_writes_the_time_series(tmp_path):
    result = invoke("run", str(SCENARIOS / "mmc.yaml"), *SHORT, "--out", str(tmp_path), "--interval", "2s")
    assert result.exit_code == 0, result.output
    with (tmp_path / "timeseries.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [float(row["t"]) for row in rows] == [2.0 * k for k in range(1, 11)]
    assert all(float(row["system.arrival_rate"]) > 0 for row in rows)
    assert (tmp_path / "timeseries.png").stat().st_size > 10_000


@pytest.mark.parametrize("args,words", [
    (["--interval", "0s"], "--interval"),
    (["--precision", "200%"], "--precision"),
    (["--warmup", "soon"], "or auto"),
])
def test_bad_options_are_clean_errors(args, words, tmp_path):
    result = invoke("run", str(SCENARIOS / "mmc.yaml"), *SHORT, "--out", str(tmp_path), *args)
    assert result.exit_code == 2 and words in result.stderr and "Traceback" not in result.output


def test_unstable_system_is_flagged_before_and_explained_after(tmp_path):
    """120% load on an unbounded queue: the busy workers cannot reach lambda * E[S] = 12 (there
    are 10), so Little's third form fails, and the reason given is the missing steady state."""
    path = tmp_path / "unstable.yaml"
    path.write_text("horizon: 2m\nwarmup: 10s\nreplications: 3\narrivals: {requests: {rate: 600/s}}\n"
                    "stations: {pool: {workers: 10, service: {dist: exponential, mean: 20ms}}}\n")
    result = invoke("run", str(path), "-q")
    assert result.exit_code == 0, result.output
    assert "station 'pool' is unstable: utilisation 120%" in result.stderr
    assert "busy = λE[S]" in result.stderr and "does not settle into a steady state" in result.stderr
