"""Labels a planner acts on: Little's law verdicts, --precision, validate's preflight and the
steady states `paysim analytic` gives for a profile."""

from __future__ import annotations

import json
from typing import ClassVar

import numpy as np
import pytest
from typer.testing import CliRunner

from paysim import analytic
from paysim.cli import app
from paysim.runner import _widest
from paysim.stats import Estimate, littles_law


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def _rows(L: list[float], W: list[float]) -> list[dict[str, float]]:
    return [{"system.L": n, "system.entry_rate": 1.0, "system.W_all": w, "system.Lq": 0.0, "system.Wq_all": 0.0,
             "system.busy": 0.0, "system.S_all": 0.0} for n, w in zip(L, W)]


def _law(rows) -> object:
    return littles_law(rows, "system")[0]


def test_wide_overlapping_intervals_are_inconclusive_not_holds():
    # 27% apart on average, but so noisy that the difference's CI contains zero: the old rule said "holds"
    rng = np.random.default_rng(1)
    L = list(10 + rng.normal(0, 8, 5))
    W = [n * 0.73 + rng.normal(0, 8) for n in L]
    check = _law(_rows(L, W))
    assert check.rel_error > 0.1 and check.difference.low < 0 < check.difference.high
    assert check.verdict == "inconclusive" and not check.holds


@pytest.mark.parametrize("L, W, verdict", [
    ([10.0, 10.1, 9.9, 10.05], [10.0, 10.1, 9.9, 10.0], "holds"),          # 0.1% error
    ([10.0, 10.2, 9.8, 10.1], [10.2, 10.0, 10.1, 9.9], "holds"),           # 0.25% apart, CI within ±5%
    ([12.0, 12.1, 11.9, 12.05], [10.0, 10.1, 9.9, 10.0], "does not hold"),  # 20% apart, CI excludes 0
    ([12.0], [10.0], "inconclusive"),                                       # one replication: no CI
])
def test_little_verdicts(L, W, verdict):
    assert _law(_rows(L, W)).verdict == verdict


def test_json_gives_littles_law_a_label():
    result = invoke("run", "scenarios/mmc.yaml", "--horizon", "20s", "--warmup", "2s", "-r", "3", "-q", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["run"]["littles_law"] in ("holds", "inconclusive", "does not hold")
    check = data["system"]["littles_law"]["L_vs_lambda_W"]
    assert check["verdict"] in ("holds", "inconclusive") and check["holds"] == (check["verdict"] == "holds")


def test_precision_covers_every_shown_time_and_rate():
    # Wq and p99 shown in the table are wider than the old headline set (throughput, W, L, utilisation)
    class Result:
        summary: ClassVar[dict[str, Estimate]] = {"system.throughput": Estimate(100, 99.9, 100.1, 10), "system.W": Estimate(1, 0.999, 1.001, 10),
                   "stations.pool.Wq": Estimate(0.004, 0.00393, 0.00407, 10),
                   "stations.pool.latency.p99": Estimate(0.1, 0.098, 0.102, 10),
                   "system.failure_rate": Estimate(0.001, 0.0, 0.002, 10)}   # a share: not a headline
    name, width = _widest(Result())
    assert name == "stations.pool.latency.p99" and width == pytest.approx(0.02)


@pytest.mark.parametrize("text, message", [
    ("2", "write 2% for 2 percent"), ("50", "write 50% for 50 percent"), ("1", "expected a relative half-width"),
])
def test_precision_refuses_a_bare_number_above_one(text, message):
    result = invoke("run", "scenarios/mmc.yaml", "--precision", text, "-q")
    assert result.exit_code == 2 and message in result.stderr, result.output


OVERLOADED = """\
horizon: 1m
arrivals: {a: {rate: 100/s}}
stations: {s: {workers: 1, service: 20ms}}
"""


def test_validate_runs_the_preflight(tmp_path):
    path = tmp_path / "over.yaml"
    path.write_text(OVERLOADED, encoding="utf-8")
    result = invoke("validate", str(path))
    assert result.exit_code == 0, result.output          # valid, but it will not settle
    assert "station 's' is unstable: utilisation 200%" in result.stderr


PROFILED = """\
horizon: 10m
arrivals:
  a: {rate: 40/s, profile: [{at: 0m, x: 1}, {at: 5m, x: 1.5}, {at: 6m, x: 1}]}
stations: {pool: {workers: 4, service: {dist: exponential, mean: 50ms}}}
"""


def test_analytic_gives_base_and_peak_steady_states_for_a_profile(tmp_path):
    path = tmp_path / "profiled.yaml"
    path.write_text(PROFILED, encoding="utf-8")
    result = invoke("analytic", str(path), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["base_rate"]["stations"]["pool"]["Wq"] == pytest.approx(analytic.mmc(40, 20, 4).Wq)
    assert data["peak_rate"]["stations"]["pool"]["Wq"] == pytest.approx(analytic.mmc(60, 20, 4).Wq)
    assert "x1.5" in data["peak_rate"]["label"] and "base rate" in data["base_rate"]["label"]
    table = invoke("analytic", str(path))
    assert "steady state at the base rate" in table.stdout and "steady state at the peak rate" in table.stdout


def test_precision_says_how_it_reads_a_large_bare_fraction(capsys):
    from paysim.cli import _precision
    assert _precision("0.5") == 0.5
    assert "read as the fraction 0.5, a half-width of 50%" in capsys.readouterr().err
    assert _precision("0.02") == 0.02 and _precision("50%") == 0.5
    assert "read as the fraction" not in capsys.readouterr().err
