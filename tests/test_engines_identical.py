"""The compiled engine against the SimPy engine on the same random numbers.

Both engines give every random component of the model (a stream's arrivals, a station's
service times, routing, errors, retry jitter) its own generator, derived from (seed,
replication, component), and consume each generator in the same order. So wherever the
model's distributions are drawn alike (deterministic, exponential, lognormal, gamma and
uniform draws: NumPy's block draws equal its scalar draws for these), one replication of a
scenario follows the same sample path on both engines, and every metric must agree to
rounding. This detects any difference in meaning, however small, that shows in the
replication's numbers; it is the engines' first check, and the statistical comparisons
(tests/test_fast_engine.py, tests/test_fast_retries.py) cover the draws that differ
(hyperexponential and empirical distributions are drawn in other orders).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest import SEED, scenario

from paysim.engine.compiled import recursion, unsupported
from paysim.runner import simulate
from paysim.scenario import Scenario, load_scenario

SCENARIOS = Path(__file__).parent.parent / "scenarios"
EXP = {"dist": "exponential", "mean": 0.05}
HORIZON = 240.0

CASES = {   # station s, stream a
    "lognormal-bounded-queue": ({"workers": 3, "queue": 4, "service": {"dist": "lognormal", "mean": 0.12, "cv": 1.5}},
                                {"rate": 24}),
    "gamma-uniform-network": ({"workers": 2, "service": {"dist": "gamma", "mean": 0.06, "cv": 0.5},
                               "errors": 0.05, "next": {"t": 0.6, "done": 0.4}},
                              {"rate": 25}),
    "deterministic-arrivals-profile": ({"workers": 2, "service": EXP},
                                       {"rate": 30, "process": "deterministic",
                                        "profile": [{"at": 60, "x": 1.2}, {"at": 120, "x": 0.6}]}),
    "timeout-cancel-retry": ({"workers": 2, "service": EXP, "on_timeout": "cancel"},
                             {"rate": 38, "timeout": 0.15,
                              "retry": {"attempts": 3, "backoff": "exponential", "base": 0.05, "max": 0.3,
                                        "jitter": "full", "on": "timeout"}}),
    "timeout-continue-decorrelated": ({"workers": 2, "service": EXP, "errors": 0.1},
                                      {"rate": 30, "timeout": 0.3,
                                       "retry": {"attempts": 3, "backoff": "decorrelated", "base": 0.02,
                                                 "max": 0.5, "on": ["timeout", "error"], "budget": "20%"}}),
    "slowdown-and-outages": ({"workers": 2, "service": EXP, "on_timeout": "cancel",
                              "slowdowns": [{"at": 40, "for": 30, "factor": 2}],
                              "outages": [{"at": 100, "for": 5}, {"at": 150, "for": 5, "mode": "hang"}]},
                             {"rate": 30, "timeout": 1.0,
                              "retry": {"attempts": 3, "backoff": "exponential", "base": 0.5, "max": 4,
                                        "jitter": "equal", "on": ["rejected", "timeout"]}}),
    "closed-population-retry": ({"workers": 2, "service": EXP, "on_timeout": "cancel", "next": {"t": 0.5, "done": 0.5}},
                                {"clients": 12, "think": {"dist": "exponential", "mean": 0.2}, "timeout": 0.3,
                                 "retry": {"attempts": 2, "backoff": "constant", "base": 0.05, "on": "timeout"}}),
    # a scheduled batch station scores its items' amounts as each goes on; approved ones go to t
    "batch-schedule-classify": ({"workers": 1, "batch": {"size": 3, "every": 0.5}, "errors": 0.05,
                                 "service": {"per_batch": EXP,
                                             "per_item": {"dist": "uniform", "low": 0.002, "high": 0.01}},
                                 "schedule": [{"at": 80, "workers": 2}, {"at": 160, "workers": 1}],
                                 "classify": {"logistic": {"intercept": -3.0, "amount": 0.02}, "review_above": 0.5,
                                              "decline_above": 0.9},
                                 "next": {"approve": "t", "review": "done", "decline": "done"}},
                                {"rate": 24, "amount": {"dist": "lognormal", "median": 80, "p99": 900}}),
    # each attempt calls the batch station t; a client that gives up withdraws its call from t's batch
    "calls-to-a-batch-cancelled": ({"workers": 2, "service": EXP, "parallel": ["t"], "on_timeout": "cancel"},
                                   {"rate": 20, "timeout": 0.6},
                                   {"batch": {"size": 4, "every": 0.4, "timer": "first_item"}, "workers": 1,
                                    "service": {"per_batch": {"dist": "exponential", "mean": 0.2}, "per_item": 0.01}}),
}


def _network(station: dict, stream: dict, t: dict | None = None) -> Scenario:
    stations = {"s": station}
    routes = station.get("next", {})
    if "t" in routes or "t" in routes.values() or "t" in station.get("parallel", ()):
        stations["t"] = t or {"workers": 2, "service": {"dist": "uniform", "low": 0.01, "high": 0.07}, "queue": 6}
    return scenario(stations, {"a": stream}, horizon=HORIZON, warmup=20.0, replications=1)


def _shortened(path: Path) -> Scenario:
    model = load_scenario(path)
    horizon = min(model.horizon, HORIZON)
    return model.model_copy(update={"horizon": horizon, "warmup": min(model.warmup or 0.0, horizon / 4)})


def _same(a: float, b: float) -> bool:
    """Equal to rounding (sums may be added in another order), or both undefined."""
    return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))


def _assert_same_path(model: Scenario) -> None:
    assert unsupported(model) is None
    rows = [simulate(model, seed=SEED, replications=1, engine=engine, jobs=1).rows[0] for engine in ("fast", "simpy")]
    assert rows[0].keys() == rows[1].keys()
    differ = {key: (a, b) for key, a in rows[0].items() if not _same(a, b := rows[1][key])}
    assert not differ, differ
    assert rows[0]["system.throughput"] > 0


@pytest.mark.parametrize("name", sorted(CASES))
def test_features_follow_the_same_path(name):
    _assert_same_path(_network(*CASES[name]))


@pytest.mark.parametrize("path", sorted(p.name for p in SCENARIOS.glob("*.yaml") if "sweep" not in p.name))
def test_example_scenarios_follow_the_same_path(path):
    _assert_same_path(_shortened(SCENARIOS / path))


def test_the_one_station_recursion_follows_the_same_path(monkeypatch):
    """The recursion and the event loop against SimPy on one station. (Without errors: the
    recursion draws a visit's error when it computes the visit, in arrival order, where the
    engines draw it as service ends; equal in distribution, not path by path.)"""
    model = _network({"workers": 3, "queue": 5, "service": {"dist": "lognormal", "mean": 0.1, "cv": 1.2},
                      "on_timeout": "cancel"}, {"rate": 28, "timeout": 0.4})
    assert recursion.fits(model)
    _assert_same_path(model)
    monkeypatch.setattr(recursion, "fits", lambda _: False)
    _assert_same_path(model)
