"""Executors behind a balancer and executors with a LIFO or priority work queue, on the
compiled engine against the SimPy engine: the same seed gives the same sample path.

Each instance of a station has its own pool (core, max, queue, keep-alive and idle threads
per instance); the report sums a station's pools as the SimPy instances share one observer.
A pool takes queued work in its station's discipline; discard_oldest throws out the one
that waited longest. One hand-off to the wrong instance, one thread retired in the wrong
pool or one task taken out of order shows at once in the metrics compared to rounding.
"""

from __future__ import annotations

import pytest
from conftest import assert_same_path, same_numbers, scenario

from paysim.runner import simulate

EXP = {"dist": "exponential", "mean": 0.1}


def _pool(executor: dict, **station) -> dict:
    return {"service": EXP, "executor": {"keep_alive": 0.3, **executor}, **station}


SAME_PATH = {   # (stations, streams, horizon): the entry station is the first
    "round-robin-caller-runs": ({"x": _pool({"core": 1, "max": 3, "queue": 2, "rejection": "caller_runs"},
                                            instances=3)}, {"a": {"rate": 100}}, 60),
    "least-busy-discard-oldest-cancel": ({"x": _pool({"core": 2, "max": 3, "queue": 3, "rejection": "discard_oldest"},
                                                     instances=2, balance="least_busy", on_timeout="cancel")},
                                         {"a": {"rate": 55, "timeout": 0.6}}, 60),
    "power-of-two-behind-a-station": ({"api": {"workers": 4, "service": {"dist": "exponential", "mean": 0.02},
                                               "next": {"x": 0.9, "done": 0.1}},
                                       "x": _pool({"core": 0, "max": 4, "queue": 0}, instances=3,
                                                  balance="power_of_two", errors=0.05)},
                                      {"a": {"rate": 60}}, 60),
    "random-with-outage-retried": ({"x": _pool({"core": 1, "max": 2, "queue": 4, "rejection": "discard"},
                                               instances=2, balance="random",
                                               outages=[{"at": 20, "for": 3, "mode": "hang"}])},
                                   {"a": {"rate": 30, "timeout": 1.0,
                                          "retry": {"attempts": 2, "backoff": "constant", "base": 0.1,
                                                    "on": "timeout"}}}, 60),
    "lifo-discard-oldest": ({"x": _pool({"core": 2, "max": 3, "queue": 4, "rejection": "discard_oldest"},
                                        discipline="lifo")}, {"a": {"rate": 32, "timeout": 1.5}}, 60),
    "priority-two-streams": ({"x": _pool({"core": 1, "max": 3, "queue": 6}, discipline="priority")},
                             {"urgent": {"rate": 10, "priority": "high"}, "bulk": {"rate": 22, "priority": "low"}},
                             60),
    # parallel calls to pools: a rejected call fails its join; a decided join (any, or a client
    # timeout with cancel) takes back calls queued or running in a pool, whose thread is freed
    "parallel-all-to-a-pool": ({"front": {"service": 0.01, "parallel": ["x", "y"]},
                                "x": _pool({"core": 1, "max": 3, "queue": 1}),
                                "y": {"workers": 2, "service": EXP}}, {"a": {"rate": 18}}, 60),
    "parallel-any-cancels-in-pools": ({"front": {"service": 0.01, "parallel": ["x", "y"], "join": "any",
                                                 "on_timeout": "cancel"},
                                       "x": _pool({"core": 1, "max": 3, "queue": 1, "rejection": "caller_runs"}),
                                       "y": _pool({"core": 2, "max": 2, "queue": 2, "rejection": "discard"})},
                                      {"a": {"rate": 35, "timeout": 0.25}}, 60),
    "lifo-instances-cancel": ({"x": _pool({"core": 1, "max": 2, "queue": 5}, instances=2, discipline="lifo",
                                          on_timeout="cancel")}, {"a": {"rate": 30, "timeout": 0.8}}, 60),
}


@pytest.mark.parametrize("case", list(SAME_PATH))
def test_same_sample_path_as_the_simpy_engine(case):
    stations, streams, horizon = SAME_PATH[case]
    reference = assert_same_path(scenario(stations, streams, horizon=horizon, warmup=5, replications=1))[0]
    assert reference["stations.x.threads"] > 0
    assert reference["stations.x.rejected"] > 0 or "caller-runs" in case or "any" in case   # (caller_runs rejects none)
    if "parallel" in case:   # the join took back calls at the pool
        assert reference["stations.x.cancelled"] + reference["stations.x.abandoned"] > 0 or "all" in case


def test_a_stations_pools_are_summed_in_its_time_series():
    """With a time series (as --out asks), each sample's threads, queue and busy over the
    instances agree too."""
    stations, streams, _ = SAME_PATH["least-busy-discard-oldest-cancel"]
    model = scenario(stations, streams, horizon=30, warmup=0, replications=1)
    series = [simulate(model, jobs=1, engine=engine, series_interval=0.997).series[0] for engine in ("simpy", "fast")]
    assert len(series[0]) == len(series[1]) > 25
    assert max(row["stations.x.threads"] for row in series[0]) > 3   # more threads than one pool's max
    for reference, compiled in zip(*series):
        assert same_numbers(reference, compiled) == []
