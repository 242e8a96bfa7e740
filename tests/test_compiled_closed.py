"""Closed populations (``clients`` with ``think``) on the compiled engine: against the exact
product-form solutions (MVA for single servers, the normalising constants for multi-server
stations), against the SimPy engine where theory has no answer (timeouts and retries in a
closed loop), and number for number where nothing is random.

Theory checks are t-tests of the replication means against the exact value, Holm-corrected
per case at family-wise level 0.1% with a fixed seed; each case asserts that a 3% bias in the
response time W would be detected (the 99.9% CI half-width of W below 1.5% of it).
"""

from __future__ import annotations

import pytest
from conftest import TEST_LEVEL, assert_holm, engine_differences, scenario

from paysim.analytic import mva
from paysim.closed_network import closed_network
from paysim.engine.compiled import recursion, unsupported
from paysim.runner import simulate
from paysim.stats import estimate


def _exp(mean: float) -> dict:
    return {"dist": "exponential", "mean": mean}


def _resolves_3_percent(result, metric: str = "system.W") -> None:
    ci = estimate([row[metric] for row in result.rows], TEST_LEVEL)
    assert ci.half_width < 0.015 * ci.mean, f"{metric}: ±{ci.half_width / ci.mean:.1%} cannot show a 3% bias"


@pytest.mark.slow
def test_single_server_network_gives_exact_mva():
    """12 clients, think 0.4 s, a -> b (70%) or done; single exponential servers: MVA is exact."""
    model = scenario({"a": {"service": _exp(0.03), "next": {"b": 0.7, "done": 0.3}},
                      "b": {"service": _exp(0.04)}},
                     {"users": {"clients": 12, "think": _exp(0.4)}}, horizon=2500, warmup=50, replications=12)
    assert unsupported(model) is None
    result = simulate(model, jobs=1, engine="auto")
    assert result.engine == "fast"
    exact = mva(12, {"a": 1.0, "b": 0.7}, {"a": 0.03, "b": 0.04}, think_time=0.4)
    assert_holm(result, {"system.goodput": (exact.throughput, 0.0), "system.W": (exact.response_time, 0.0),
                         "stations.a.L": (exact.stations["a"].L, 0.0), "stations.b.L": (exact.stations["b"].L, 0.0),
                         "stations.a.utilization": (exact.stations["a"].utilization, 0.0),
                         "stations.b.W": (exact.stations["b"].W, 0.0)}, alpha=0.001)
    _resolves_3_percent(result)


@pytest.mark.slow
def test_multi_server_network_gives_the_exact_product_form():
    """8 clients, think 0.5 s, two workers at a then b: the normalising constants are exact
    (any think distribution: here deterministic, which the product form allows)."""
    model = scenario({"a": {"workers": 2, "service": _exp(0.1), "next": "b"}, "b": {"service": _exp(0.06)}},
                     {"users": {"clients": 8, "think": 0.5}}, horizon=2500, warmup=50, replications=12)
    result = simulate(model, jobs=1, engine="fast")
    exact = closed_network(8, {"a": 1.0, "b": 1.0}, {"a": 0.1, "b": 0.06}, {"a": 2, "b": 1}, 0.5)
    assert_holm(result, {"system.goodput": (exact.throughput, 0.0), "system.W": (exact.response_time, 0.0),
                         "stations.a.L": (exact.stations["a"].L, 0.0), "stations.b.L": (exact.stations["b"].L, 0.0),
                         "stations.a.utilization": (exact.stations["a"].utilization, 0.0)}, alpha=0.001)
    _resolves_3_percent(result)


def test_a_single_station_closed_population_runs_in_the_event_loop():
    """Its requests depend on the past: the recursion, which needs the arrivals up front, is not used.
    One station, 5 clients, no think time (Z = 0): MVA's throughput within its 99.9% CI."""
    model = scenario({"s": {"service": _exp(0.02)}}, {"users": {"clients": 5}}, horizon=300, warmup=10,
                     replications=8)
    assert not recursion.fits(model)
    result = simulate(model, jobs=1, engine="fast")
    exact = mva(5, {"s": 1.0}, {"s": 0.02})
    assert_holm(result, {"system.goodput": (exact.throughput, 0.0), "system.W": (exact.response_time, 0.0)},
                alpha=0.001)


HEADLINE = ("system.goodput", "system.W", "system.failure_rate", "system.retry_amplification",
            "stations.s.utilization", "stations.s.L")


@pytest.mark.slow
def test_timeouts_and_retries_in_a_closed_loop_match_simpy():
    """No theory here: a client retries a timed-out request, and thinks only once it has an
    outcome. Replication means compared as two samples (Bonferroni over the metrics, 0.1%
    family-wise); the detectable relative difference (twice the bound) is asserted below 6%
    on goodput and W."""
    model = scenario({"s": {"workers": 2, "service": _exp(0.05), "on_timeout": "cancel", "errors": 0.05}},
                     {"users": {"clients": 14, "think": _exp(0.2), "timeout": 0.25,
                                "retry": {"attempts": 3, "backoff": "exponential", "base": 0.05,
                                          "on": ["timeout", "error"]}}},
                     horizon=300, warmup=20, replications=28)
    reference = simulate(model, jobs=1, engine="simpy")
    compiled = simulate(model, jobs=1, engine="fast")
    problems, detectable = engine_differences({name: ([row[name] for row in reference.rows],
                                                      [row[name] for row in compiled.rows]) for name in HEADLINE})
    assert problems == []
    assert detectable["system.goodput"] < 0.06 and detectable["system.W"] < 0.06, detectable
    assert compiled.summary["system.retries"].mean > 0 and compiled.summary["system.failure_rate"].mean > 0


def test_deterministic_closed_loop_gives_the_same_numbers_on_both_engines():
    """3 clients thinking 0.3 s, served 0.1 s each by one worker, and an open stream beside
    them: no randomness, so both engines give the same numbers."""
    model = scenario({"s": {"service": 0.1}},
                     {"users": {"clients": 3, "think": 0.3},
                      "walk_in": {"rate": 1.3, "process": "deterministic"}},
                     horizon=100, warmup=7, replications=1)
    reference = simulate(model, jobs=1, engine="simpy").rows[0]
    compiled = simulate(model, jobs=1, engine="fast").rows[0]
    for name in ("system.goodput", "system.W", "system.L", "streams.users.arrival_rate", "streams.users.W",
                 "streams.walk_in.W", "stations.s.utilization", "stations.s.Lq", "system.latency.p99"):
        assert compiled[name] == pytest.approx(reference[name], rel=1e-9, abs=1e-12), name
