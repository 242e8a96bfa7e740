"""Properties every run must have, on randomly generated feed-forward networks."""

from __future__ import annotations

import math

import pytest
from conftest import scenario
from hypothesis import HealthCheck, given, settings, strategies as st

from paysim.runner import simulate

SERVICES = st.sampled_from([
    {"dist": "exponential", "mean": 0.05},
    {"dist": "lognormal", "median": 0.03, "p99": 0.3},
    {"dist": "gamma", "mean": 0.04, "cv": 2.0},
    {"dist": "uniform", "low": 0.01, "high": 0.05},
    0.02,
])


@st.composite
def networks(draw):
    """1-4 stations in a line, each possibly skipping ahead or leaving; some bounded, some overloaded;
    some streams with client timeouts."""
    count = draw(st.integers(1, 4))
    names = [f"s{i}" for i in range(count)]
    stations = {}
    for i, name in enumerate(names):
        station = {"workers": draw(st.integers(1, 6)), "service": draw(SERVICES),
                   "on_timeout": draw(st.sampled_from(["cancel", "continue"]))}
        if draw(st.booleans()):
            station["queue"] = draw(st.integers(0, 20))
        later = names[i + 1:] + ["done"]
        if len(later) > 1 and draw(st.booleans()):
            station["next"] = {later[0]: 0.5, later[-1]: 0.5}
        else:
            station["next"] = later[0]
        stations[name] = station
    arrivals = {"a": {"rate": draw(st.floats(5, 150)), "enter": names[0],
                      "process": draw(st.sampled_from(["poisson", "deterministic"]))}}
    if draw(st.booleans()):
        arrivals["b"] = {"rate": draw(st.floats(1, 50)), "enter": draw(st.sampled_from(names))}
    for stream in arrivals.values():
        if draw(st.booleans()):
            stream["timeout"] = draw(st.sampled_from([0.05, 0.2, 1.0]))
    return scenario(stations, arrivals, horizon=40, warmup=draw(st.sampled_from([0, 5])), replications=2,
                    seed=draw(st.integers(0, 2**32)))


def _work_continues_after_timeout(model) -> bool:
    return any(a.timeout is not None for a in model.arrivals.values()) and any(
        s.on_timeout == "continue" for s in model.stations.values())


@settings(max_examples=40, deadline=None, derandomize=True, database=None,   # the same examples on every run
          suppress_health_check=[HealthCheck.too_slow])
@given(networks(), st.sampled_from(["simpy", "fast"]))
def test_run_invariants(model, engine):
    result = simulate(model, jobs=1, engine=engine)
    window = model.horizon - model.warmup
    for row in result.rows:
        # conservation of attempts: what was inside when the window opened, plus what entered
        # in it, left in it or is still inside at the end
        inside, entered = row["system.in_system_at_start"], row["system.attempts"]
        assert entered == pytest.approx(row["system.arrival_rate"] * window)   # no retries here
        assert inside + entered == row["system.departed"] + row["system.in_system_at_end"]
        # and each attempt that left finished its route or was lost with one outcome, decided as
        # it left, unless a client timed out and the work went on (then the outcome came first)
        losses = [row[f"system.{loss}"] for loss in ("rejected", "errored", "abandoned", "cancelled")]
        if not _work_continues_after_timeout(model):
            assert row["system.timed_out"] == 0
            assert row["system.departed"] == pytest.approx(row["system.throughput"] * window + sum(losses))
        for name, station in model.stations.items():
            prefix = f"stations.{name}."
            assert 0 <= row[prefix + "utilization"] <= 1 + 1e-9
            assert row[prefix + "busy"] <= station.workers + 1e-9
            assert 0 <= row[prefix + "Lq"] <= row[prefix + "L"] + 1e-9
            if station.queue is not None:
                assert row[prefix + "Lq"] <= station.queue + 1e-9
            # undefined (NaN) only where nothing reached the station in the window
            rejection = row[prefix + "rejection_rate"]
            assert 0 <= rejection <= 1 or (math.isnan(rejection) and row[prefix + "arrival_rate"] == 0)
        latencies = [row[f"system.latency.{p}"] for p in ("p50", "p90", "p95", "p99", "p999")]
        if not any(math.isnan(x) for x in latencies):
            assert latencies == sorted(latencies)
            assert row["system.Wq"] <= row["system.W"] + 1e-12
            # over all requests (failures slower than any success): ordered, never below the successes'
            everyone = [row[f"system.latency_all.{p}"] for p in ("p50", "p90", "p95", "p99", "p999")]
            assert everyone == sorted(everyone) and all(a >= s for a, s in zip(everyone, latencies))
            if row["system.failed"] == 0:
                assert everyone == latencies
        failure = row["system.failure_rate"]   # undefined (NaN) only if no request was decided in the window
        assert 0 <= failure <= 1 or (math.isnan(failure) and row["system.goodput"] == 0 and row["system.failed"] == 0)
        reasons = sum(row[f"system.{rate}"] for rate in ("rejection_rate", "timeout_rate", "error_rate", "abandon_rate",
                                                          "cancel_rate"))
        assert math.isnan(row["system.failure_rate"]) or reasons == pytest.approx(row["system.failure_rate"])
