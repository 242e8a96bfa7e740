"""A percentile comes from a log-bucket sketch known only to within its relative error (0.5%),
and replications that land in one bucket agree exactly, giving a zero-width interval. Before,
an SLO verdict and a sizing trial judged such a zero-width interval as if it were exact: a p99
of 1.000 s "±0" was "met" against 1.003 s. Now the interval is widened by the sketch's error
before it is judged."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from paysim.scenario import load_scenario
from paysim.sketch import RELATIVE_ERROR
from paysim.stats import Estimate, check_slo

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
EXACT = 0.0


def _summary(p99: Estimate) -> dict[str, Estimate]:
    zero = Estimate(EXACT, EXACT, EXACT, 10)
    return {"system.latency_all.p99": p99, "system.latency.p99": p99, "system.failure_rate": zero}


@pytest.mark.parametrize("target, verdict", [(1.003, "uncertain"), (0.997, "uncertain"),
                                             (1.0 * (1 + 2 * RELATIVE_ERROR), "met"),
                                             (1.0 * (1 - 2 * RELATIVE_ERROR), "missed")])
def test_a_zero_width_percentile_interval_is_judged_with_the_sketch_error(target, verdict):
    one_bucket = Estimate(1.0, 1.0, 1.0, 10)       # ten replications, one sketch bucket
    (check,) = check_slo(_summary(one_bucket), {"p99_latency": target})
    assert check.verdict == verdict


@pytest.mark.parametrize("target, holds", [(0.1, False), (0.1 * (1 + 2 * RELATIVE_ERROR), True)])
def test_a_sizing_trial_needs_the_sketch_error_below_the_target(monkeypatch, target, holds):
    from paysim import sizing

    one_bucket = Estimate(0.0998, 0.0998, 0.0998, 10)
    monkeypatch.setattr(sizing, "simulate", lambda *a, **k: types.SimpleNamespace(summary=_summary(one_bucket)))
    objective = sizing.Objective(text=f"p99<{target}", metric="latency.p99", target=target, is_time=True)
    trial = sizing._trial(load_scenario(SCENARIOS / "mmc.yaml"), "pool", objective, 10, None, 2, 1, None, None)
    assert trial.holds is holds
