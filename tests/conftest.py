"""Shared helpers for tests that simulate."""

from __future__ import annotations

from typing import Any

import pytest

from paysim.runner import RunResult, simulate
from paysim.scenario import Scenario, scenario_from_data
from paysim.sketch import RELATIVE_ERROR
from paysim.stats import Estimate, estimate

# Statistical assertions use the 99.9% Student-t interval over independent replications,
# with a fixed seed: a correct engine fails one such assertion for 1 seed in 1000.
TEST_LEVEL = 0.999


def scenario(stations: dict[str, Any], arrivals: dict[str, Any], horizon: float, warmup: float,
             replications: int = 10, seed: int = 20261125) -> Scenario:
    return scenario_from_data({"horizon": horizon, "warmup": warmup, "replications": replications, "seed": seed,
                               "arrivals": arrivals, "stations": stations}, "test.yaml")


def run(model: Scenario) -> RunResult:
    return simulate(model, jobs=1)


def interval(result: RunResult, metric: str) -> Estimate:
    """The TEST_LEVEL interval of one metric over the run's replications."""
    return estimate([row[metric] for row in result.rows], TEST_LEVEL)


def assert_theory(result: RunResult, metric: str, theory: float, extra_relative: float = 0.0) -> None:
    """Theory must lie inside the replications' 99.9% CI (widened by a stated measurement error)."""
    ci = interval(result, metric)
    low, high = ci.low * (1 - extra_relative), ci.high * (1 + extra_relative)
    assert low <= theory <= high, f"{metric}: theory {theory:.6g} outside 99.9% CI [{low:.6g}, {high:.6g}] (mean {ci.mean:.6g})"


def assert_percentile(result: RunResult, metric: str, theory: float) -> None:
    """Percentiles carry the sketch's stated relative error on top of the sampling CI."""
    assert_theory(result, metric, theory, RELATIVE_ERROR)


def assert_little(result: RunResult) -> None:
    for scope, checks in result.little.items():
        for check in checks:
            assert check.verdict != "does not hold", f"Little's law {check.law} fails at {scope}: {check}"


@pytest.fixture
def tmp_scenario(tmp_path):
    """Write YAML text to a file and return its path."""
    def write(text: str, name: str = "scenario.yaml"):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path
    return write
