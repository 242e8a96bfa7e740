"""The compiled engine's worker schedules, against the SimPy engine and theory.

Scenarios without randomness (deterministic arrivals and service) must give the same
numbers on both engines, every metric of the row. Random ones are compared in distribution:
the replication means of each headline metric as two independent samples, their
difference within z·sqrt(se1² + se2²), z at a Bonferroni-corrected level (0.1% shared by the
metrics of a case), with a fixed seed. Each case states the relative bias it can detect
(twice that bound over the mean: a true difference that large lands beyond the bound with
probability above 99%) and asserts it on W, so the runs stay long enough to mean it.
Where theory has an answer (a schedule that keeps the worker count constant is M/M/c; the
time-average of workers is the schedule's), the compiled engine is held to it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_case_agrees, assert_holm, assert_same_path, same_numbers, scenario
from scipy import stats

from paysim.analytic import mmc
from paysim.engine.compiled import recursion
from paysim.runner import simulate

EXP = {"dist": "exponential", "mean": 0.05}

DETERMINISTIC = {   # (stations, the arrival stream a, horizon, warm-up)
    # 4 workers, 8 from 100 s, 2 from 200 s (then overloaded: the queue grows)
    "schedule-up-then-down": ({"x": {"workers": 4, "service": 23 / 64,
                                     "schedule": [{"at": 100, "workers": 8}, {"at": 200, "workers": 2}]}},
                              {"rate": 8, "process": "deterministic"}, 300, 10),
    # 20 busy-ish workers drop to 5 at 50.5 s: those in service finish before any is replaced
    "schedule-lower-lets-busy-finish": ({"x": {"workers": 20, "service": 10.25,
                                               "schedule": [{"at": 50.5, "workers": 5}, {"at": 90, "workers": 12}]}},
                                        {"interarrival": 1.0}, 150, 5),
    # a change at 0, a change during a hang and one as it ends (the outage's end comes first, as in
    # SimPy), a bounded queue and withdrawn work whose freed worker may not be replaced
    "schedule-outage-queue-cancel": ({"x": {"workers": 2, "queue": 3, "service": 0.3, "on_timeout": "cancel",
                                            "outages": [{"at": 30.03125, "for": 2, "mode": "hang"}],
                                            "schedule": [{"at": 0, "workers": 3}, {"at": 31, "workers": 1},
                                                         {"at": 32.03125, "workers": 4},
                                                         {"at": 60.5, "workers": 1}]}},
                                     {"rate": 8, "process": "deterministic", "timeout": 1.2}, 100, 5),
    "schedule-downstream": ({"s": {"workers": 2, "service": 0.2, "next": "t"},
                             "t": {"workers": 1, "service": 0.1, "schedule": [{"at": 40, "workers": 3}]}},
                            {"rate": 12, "process": "deterministic"}, 80, 0),
    # (the loop that resumes a station after a change, shared with outages): a slowdown that ends
    # while the station hangs with work waiting starts nothing until the hang ends
    "slowdown-ends-while-hanging": ({"x": {"workers": 2, "service": 0.3,
                                           "slowdowns": [{"at": 10.03125, "for": 15, "factor": 2}],
                                           "outages": [{"at": 20.03125, "for": 10, "mode": "hang"}]}},
                                    {"rate": 8, "process": "deterministic"}, 60, 0),
}


@pytest.mark.parametrize("case", list(DETERMINISTIC))
def test_deterministic_schedules_give_the_same_numbers_on_both_engines(case):
    stations, arrival, horizon, warmup = DETERMINISTIC[case]
    assert_same_path(scenario(stations, {"a": arrival}, horizon=horizon, warmup=warmup, replications=1))


def test_a_random_schedule_follows_the_same_path_on_both_engines():
    """Both engines draw each component from its own generator in the same order
    (tests/test_engines_identical.py), so with Poisson arrivals, exponential service, errors
    and clients who give up, a schedule that cuts and adds workers (one change during a hang)
    still gives the same numbers on both."""
    model = scenario({"s": {"workers": 3, "service": EXP, "errors": 0.05, "on_timeout": "cancel",
                            "outages": [{"at": 70, "for": 4, "mode": "hang"}],
                            "schedule": [{"at": 30, "workers": 1}, {"at": 72, "workers": 4},
                                         {"at": 110, "workers": 2}]}},
                     {"a": {"rate": 35, "timeout": 0.4}}, horizon=150, warmup=10, replications=2)
    reference = simulate(model, jobs=1, engine="simpy")
    compiled = simulate(model, jobs=1, engine="fast")
    for r in range(2):
        assert same_numbers(reference.rows[r], compiled.rows[r]) == []
    assert compiled.rows[0]["stations.s.cancelled"] > 0 and compiled.rows[0]["stations.s.errored"] > 0


def test_the_recursion_leaves_schedules_to_the_event_loop():
    station = {"service": EXP, "schedule": [{"at": 10, "workers": 2}]}
    assert not recursion.fits(scenario({"s": station}, {"a": {"rate": 5}}, horizon=50, warmup=0))


# ---------------------------------------------------------------- in distribution against SimPy

CASES = {   # (stations, arrival, headline station metrics, horizon): 20 replications each
    # M/M/c whose workers go 3 -> 5 -> 2 -> 4 -> 3, the phase with 2 short and overloaded (ρ 0.9)
    "schedule-mmc": ({"s": {"workers": 3, "service": {"dist": "exponential", "mean": 0.1},
                            "schedule": [{"at": 400, "workers": 5}, {"at": 800, "workers": 2},
                                         {"at": 830, "workers": 4}, {"at": 1600, "workers": 3}]}},
                     {"rate": 18}, ("stations.s.utilization", "stations.s.busy", "stations.s.Wq"), 3000),
}



@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_compiled_schedules_match_simpy_in_distribution(case):
    assert_case_agrees(*CASES[case])   # (see conftest: a 3% bias in W detectable)


# ---------------------------------------------------------------- theory

@pytest.mark.slow
def test_a_schedule_that_keeps_three_workers_is_mmc():
    """Five workers cut to three at time 0, then 'changed' to three twice: M/M/3 at ρ = 0.6
    (Wq = C/(cμ − λ)). 10 replications of 20000 s put W within about ±0.9% at 99.9% (asserted
    below 1.5%), so a 3% bias in W (or a worker count applied wrongly) fails; Holm over the
    four metrics at 0.1%."""
    lam, mean, workers, replications = 18.0, 0.1, 3, 10
    model = scenario({"s": {"workers": 5, "service": {"dist": "exponential", "mean": mean},
                            "schedule": [{"at": 0, "workers": workers}, {"at": 7000, "workers": workers},
                                         {"at": 15000, "workers": workers}]}},
                     {"a": {"rate": lam}}, horizon=20000, warmup=100, replications=replications)
    result = simulate(model, jobs=1, engine="fast")
    assert result.engine == "fast"
    theory = mmc(lam, 1 / mean, workers)
    assert_holm(result, {"stations.s.W": (theory.W, 0.0), "stations.s.Wq": (theory.Wq, 0.0),
                         "stations.s.Lq": (theory.Lq, 0.0), "stations.s.utilization": (theory.utilization, 0.0)},
                alpha=0.001)
    w = np.array([row["stations.s.W"] for row in result.rows])
    half = stats.t.ppf(0.9995, replications - 1) * w.std(ddof=1) / math.sqrt(replications) / theory.W
    assert half < 0.015, f"the run cannot resolve a 3% bias in W (99.9% half-width {half:.1%})"


@pytest.mark.parametrize("warmup", [0.0, 35.0])
def test_the_time_average_of_workers_is_the_schedules(warmup):
    """busy / utilization is the time-average worker count over the window: exactly the
    schedule's (4 until 30 s, 7 until 70 s, 2 until 90 s, 6 to the end), whatever the load."""
    changes = [(0.0, 4), (30.0, 7), (70.0, 2), (90.0, 6)]
    horizon = 120.0
    model = scenario({"s": {"workers": 4, "service": {"dist": "exponential", "mean": 0.2},
                            "schedule": [{"at": at, "workers": n} for at, n in changes[1:]]}},
                     {"a": {"rate": 15}}, horizon=horizon, warmup=warmup, replications=3)
    ends = [at for at, _ in changes[1:]] + [horizon]
    area = sum(n * max(0.0, end - max(at, warmup)) for (at, n), end in zip(changes, ends))
    expected = area / (horizon - warmup)
    for row in simulate(model, jobs=1, engine="fast").rows:
        assert row["stations.s.busy"] / row["stations.s.utilization"] == pytest.approx(expected, rel=1e-9)
