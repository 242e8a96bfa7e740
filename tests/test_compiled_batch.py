"""The compiled engine's batch stations, against the SimPy engine and theory.

Scenarios without randomness (deterministic arrivals and service) must give the same
numbers on both engines, every metric of the row. Random ones are compared in distribution:
the replication means of each headline metric as two independent samples, their
difference within z·sqrt(se1² + se2²), z at a Bonferroni-corrected level (0.1% shared by the
metrics of a case), with a fixed seed. Each case states the relative bias it can detect
(twice that bound over the mean: a true difference that large lands beyond the bound with
probability above 99%) and asserts it on W, so the runs stay long enough to mean it.
Where theory has an answer (time-triggered batches of Poisson arrivals), the compiled engine
is held to it.
"""

from __future__ import annotations

import math

import pytest
from conftest import assert_case_agrees, assert_holm, assert_same_path, same_numbers, scenario

from paysim.engine.compiled import recursion
from paysim.runner import simulate

EXP = {"dist": "exponential", "mean": 0.05}
# items at odd sixteenths of a second (3/16, 5/16, ...): a zero-rate first 1/16 s shifts them off
# the whole seconds where batch timers tick
OFF_GRID = {"rate": 8, "process": "deterministic", "profile": [{"at": 0, "x": 0}, {"at": 0.0625, "x": 1}]}
SETTLE = {"per_batch": 0.25, "per_item": 0.03125}

DETERMINISTIC = {   # (stations, the arrival stream a, horizon, warm-up)
    # every 4th item closes a batch (1/4 + 4/32 s of work); the items go on to a single worker
    "batch-size-then-station": ({"settle": {"batch": {"size": 4}, "service": SETTLE, "next": "t"},
                                 "t": {"service": 0.1}},
                                {"rate": 8, "process": "deterministic"}, 110, 10),
    "batch-clock": ({"settle": {"batch": {"every": 1.0}, "service": SETTLE}}, OFF_GRID, 110, 10),
    "batch-size-and-clock": ({"settle": {"batch": {"size": 5, "every": 1.0}, "service": SETTLE}}, OFF_GRID, 110, 10),
    "batch-first-item": ({"settle": {"batch": {"size": 5, "every": 1.0, "timer": "first_item"}, "service": SETTLE}},
                         OFF_GRID, 110, 10),
    "batch-first-item-drifts": ({"settle": {"batch": {"every": 0.9375, "timer": "first_item"}, "service": SETTLE}},
                                OFF_GRID, 110, 10),
    # batches of 4 take 1.4 s every 0.5 s: closed batches wait for one of 2, then 3, then 1 worker
    "batch-workers-scheduled": ({"settle": {"batch": {"size": 4}, "workers": 2,
                                            "service": {"per_batch": 1.0, "per_item": 0.1},
                                            "schedule": [{"at": 20.0625, "workers": 3}, {"at": 40, "workers": 1}]}},
                                {"rate": 8, "process": "deterministic"}, 60, 0),
    # clients give up after 1.3 s: items withdrawn while gathering, while closed and in service
    "batch-timeout-cancel": ({"settle": {"batch": {"every": 1.0}, "workers": 1, "on_timeout": "cancel",
                                         "service": {"per_batch": 0.5, "per_item": 0.03125}}},
                             {**OFF_GRID, "timeout": 1.3}, 60, 5),
    "batch-timeout-cancel-first-item-retried": (
        {"settle": {"batch": {"size": 6, "every": 0.75, "timer": "first_item"}, "on_timeout": "cancel",
                    "service": {"per_batch": 0.6, "per_item": 0.0625}, "queue": 9}},
        {**OFF_GRID, "timeout": 1.0, "retry": {"attempts": 3, "backoff": "constant", "base": 0.40625,
                                               "on": ["timeout", "rejected"]}}, 60, 5),
    "batch-refusing-outage": ({"settle": {"batch": {"size": 3, "every": 2.0}, "service": SETTLE,
                                          "outages": [{"at": 20.03125, "for": 3}, {"at": 40.03125, "for": 2,
                                                                                   "mode": "hang"}]}},
                              OFF_GRID, 60, 0),
}


@pytest.mark.parametrize("case", list(DETERMINISTIC))
def test_deterministic_batches_give_the_same_numbers_on_both_engines(case):
    stations, arrival, horizon, warmup = DETERMINISTIC[case]
    model = scenario(stations, {"a": arrival}, horizon=horizon, warmup=warmup, replications=1)
    assert assert_same_path(model)[1]["stations.settle.batch_size"] > 1


def test_errors_and_routing_after_a_batch_draw_the_same_numbers_on_both_engines():
    """Both engines give each station's error and routing draws their own generator, and the
    items of a finished batch draw in batch order: the same replication is the same run."""
    model = scenario({"settle": {"batch": {"size": 4, "every": 1.0}, "service": SETTLE, "errors": 0.2,
                                 "next": {"t": 0.5, "u": 0.3, "done": 0.2}},
                      "t": {"service": 0.1}, "u": {"service": 0.15, "workers": 2}},
                     {"a": {"rate": 8, "process": "deterministic"}}, horizon=80, warmup=5, replications=2)
    reference = simulate(model, jobs=1, engine="simpy")
    compiled = simulate(model, jobs=1, engine="fast")
    for r in range(2):
        assert same_numbers(reference.rows[r], compiled.rows[r]) == []
    assert compiled.rows[0]["stations.settle.errored"] > 0


def test_the_time_series_of_batches_is_the_same_on_both_engines():
    """The sampled series counts a batch station's busy workers (not its items in service),
    as the SimPy engine's does: samples off the 1/16 s grid see the same numbers."""
    stations, arrival, horizon, warmup = DETERMINISTIC["batch-workers-scheduled"]
    model = scenario(stations, {"a": arrival}, horizon=horizon, warmup=warmup, replications=1)
    reference = simulate(model, jobs=1, engine="simpy", series_interval=0.75)
    compiled = simulate(model, jobs=1, engine="fast", series_interval=0.75)
    assert compiled.engine == "fast" and len(compiled.series[0]) == len(reference.series[0]) == 80
    for mine, theirs in zip(compiled.series[0], reference.series[0]):
        assert same_numbers(theirs, mine) == [], f"at t = {theirs['t']}"
    assert max(row["stations.settle.busy"] for row in compiled.series[0]) == 3


def test_the_recursion_leaves_batches_to_the_event_loop():
    station = {"service": SETTLE, "batch": {"size": 3}}
    assert not recursion.fits(scenario({"s": station}, {"a": {"rate": 5}}, horizon=50, warmup=0))


# ---------------------------------------------------------------- in distribution against SimPy

CASES = {   # (stations, arrival, headline station metrics, horizon): 20 replications each
    # Poisson items into size-or-clock batches with random per-batch and per-item times, some
    # errors, then an M/M/2 station
    "batch-then-mmc": ({"settle": {"batch": {"size": 10, "every": 0.5}, "workers": 2, "errors": 0.05,
                                   "service": {"per_batch": {"dist": "exponential", "mean": 0.2},
                                               "per_item": {"dist": "exponential", "mean": 0.01}},
                                   "next": {"t": 0.8, "done": 0.2}},
                        "t": {"workers": 2, "service": {"dist": "exponential", "mean": 0.05}}},
                       {"rate": 30}, ("stations.settle.batch_size", "stations.settle.busy",
                                      "stations.settle.utilization", "stations.settle.Wq", "stations.t.W"), 1500),
    # first-item timers, a schedule on the batch station and clients who give up (cancel)
    "batch-first-item-scheduled-cancel": (
        {"settle": {"batch": {"size": 8, "every": 0.4, "timer": "first_item"}, "workers": 1,
                    "on_timeout": "cancel", "schedule": [{"at": 60, "workers": 2}, {"at": 120, "workers": 1}],
                    "service": {"per_batch": {"dist": "exponential", "mean": 0.15},
                                "per_item": {"dist": "gamma", "mean": 0.02, "cv": 0.5}}}},
        {"rate": 25, "timeout": 0.9}, ("stations.settle.batch_size", "stations.settle.busy",
                                        "stations.settle.abandoned", "stations.settle.cancelled"), 1500),
}



@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_compiled_batches_match_simpy_in_distribution(case):
    assert_case_agrees(*CASES[case])   # (see conftest: a 3% bias in W detectable)


# ---------------------------------------------------------------- theory

def test_time_triggered_batches_of_poisson_arrivals_on_the_compiled_engine():
    """Poisson λ, a tick every T (tests/test_engine_features.py checks the SimPy engine on the
    same law): an item waits T/2 for the tick; the batch of a random item holds 1 + Poisson(λT);
    batches are not empty with probability 1 − e^{−λT}; batches take less than T, so none waits
    for the worker. 10 replications of 4000 s: Wq within about ±0.5%; Holm at 0.1%."""
    lam, every, per_batch, per_item = 4.0, 1.0, 0.25, 0.03125
    model = scenario({"settle": {"batch": {"every": every}, "service": {"per_batch": per_batch, "per_item": per_item}}},
                     {"a": {"rate": lam}}, horizon=4000, warmup=0, replications=10)
    result = simulate(model, jobs=1, engine="fast")
    nonempty = 1 - math.exp(-lam * every)
    busy = (per_batch * nonempty + per_item * lam * every) / every
    assert_holm(result, {"stations.settle.Wq": (every / 2, 0.0),
                         "stations.settle.S": (per_batch + per_item * (lam * every + 1), 0.0),
                         "stations.settle.batch_size": (lam * every / nonempty, 0.0),
                         "stations.settle.utilization": (busy, 0.0), "stations.settle.busy": (busy, 0.0),
                         "stations.settle.offered_load": (busy, 0.0)}, alpha=0.001)
