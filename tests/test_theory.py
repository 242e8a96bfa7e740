"""The engine against queueing theory: every case's answer from paysim.analytic must lie in
the simulation's 99.9% confidence interval (see conftest.TEST_LEVEL), and Little's law must
hold on every run."""

from __future__ import annotations

import pytest
from conftest import assert_little, assert_percentile, assert_theory, run, scenario

from paysim import analytic
from paysim.distributions import Lognormal


def _single(rate: float, service, workers: int, queue: int | None = None, horizon: float = 20_000,
            warmup: float = 2_000, replications: int = 10):
    station = {"workers": workers, "service": service}
    if queue is not None:
        station["queue"] = queue
    return scenario({"pool": station}, {"jobs": {"rate": rate}}, horizon, warmup, replications)


# (arrival rate /s, mean service s, workers, horizon s): service rate 1/mean
# (the long ones, 8-11 s on one core, are marked slow: `pytest -m "not slow"` skips them)
SLOW = pytest.mark.slow
MMC_CASES = [
    pytest.param(0.5, 1.0, 1, 20_000, id="M/M/1 rho=0.5"),
    pytest.param(0.9, 1.0, 1, 100_000, id="M/M/1 rho=0.9", marks=SLOW),
    pytest.param(1.6, 1.0, 2, 30_000, id="M/M/2 rho=0.8"),
    pytest.param(8.0, 1.0, 10, 10_000, id="M/M/10 rho=0.8", marks=SLOW),
    pytest.param(45.0, 1.0, 50, 3_000, id="M/M/50 rho=0.9", marks=SLOW),
]


@pytest.mark.parametrize("rate, mean, workers, horizon", MMC_CASES)
def test_mmc_matches_erlang_c(rate, mean, workers, horizon):
    result = run(_single(rate, {"dist": "exponential", "mean": mean}, workers, horizon=horizon, warmup=horizon / 10))
    theory = analytic.mmc(rate, 1 / mean, workers)
    for metric in ("Wq", "W", "L", "Lq", "utilization"):
        assert_theory(result, f"stations.pool.{metric}", getattr(theory, metric))
    for key, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        assert_percentile(result, f"stations.pool.latency.{key}", analytic.mmc_sojourn_quantile(q, rate, 1 / mean, workers))
    assert_little(result)


@pytest.mark.parametrize("workers, queue, load", [(1, 0, 0.8), (2, 3, 0.9), pytest.param(5, 5, 1.3, marks=SLOW)])
def test_mmck_blocking_probability(workers, queue, load):
    rate = load * workers
    result = run(_single(rate, {"dist": "exponential", "mean": 1.0}, workers, queue=queue, horizon=20_000))
    theory = analytic.mmck(rate, 1.0, workers, workers + queue)
    assert_theory(result, "stations.pool.rejection_rate", theory.p_block)
    assert_theory(result, "stations.pool.throughput", theory.throughput)
    assert_theory(result, "stations.pool.L", theory.L)
    if queue:
        assert_theory(result, "stations.pool.Wq", theory.Wq)
    assert_little(result)


def test_md1_pollaczek_khinchine():
    result = run(_single(0.7, 1.0, 1, horizon=30_000))
    theory = analytic.mg1(0.7, 1.0, 0.0)
    for metric in ("Wq", "W", "L"):
        assert_theory(result, f"stations.pool.{metric}", getattr(theory, metric))
    assert_little(result)


def test_mg1_lognormal_pollaczek_khinchine():
    service = {"dist": "lognormal", "mean": 1.0, "cv": 1.5}
    result = run(_single(0.6, service, 1, horizon=60_000, warmup=6_000))
    theory = analytic.mg1(0.6, 1.0, Lognormal.from_mean_cv(1.0, 1.5).scv)
    for metric in ("Wq", "W", "L", "utilization"):
        assert_theory(result, f"stations.pool.{metric}", getattr(theory, metric))
    assert_little(result)


def _jackson(stations: dict, rate: float):
    result = run(scenario(stations, {"jobs": {"rate": rate, "enter": next(iter(stations))}}, 10_000, 1_000))
    routing = {name: spec.get("next", {"done": 1.0}) if isinstance(spec.get("next"), dict)
               else {spec.get("next", "done"): 1.0} for name, spec in stations.items()}
    per_node, total = analytic.jackson_network(
        {next(iter(stations)): rate}, routing,
        {name: 1 / spec["service"]["mean"] for name, spec in stations.items()},
        {name: spec["workers"] for name, spec in stations.items()})
    for name, theory in per_node.items():
        for metric in ("Wq", "W", "L", "throughput"):
            assert_theory(result, f"stations.{name}.{metric}", getattr(theory, metric))
    assert_theory(result, "system.L", total.L)
    assert_theory(result, "system.W", total.W)
    assert_little(result)


@SLOW
def test_tandem_jackson_network():
    _jackson({
        "gateway": {"workers": 4, "service": {"dist": "exponential", "mean": 0.5}, "next": "risk"},
        "risk": {"workers": 2, "service": {"dist": "exponential", "mean": 0.3}, "next": "acquirer"},
        "acquirer": {"workers": 8, "service": {"dist": "exponential", "mean": 1.0}},
    }, rate=6.0)


@SLOW
def test_branching_jackson_network_with_feedback():
    _jackson({
        "gateway": {"workers": 3, "service": {"dist": "exponential", "mean": 0.2}, "next": {"fast": 0.7, "slow": 0.3}},
        "fast": {"workers": 2, "service": {"dist": "exponential", "mean": 0.25}},
        "slow": {"workers": 4, "service": {"dist": "exponential", "mean": 1.0}, "next": {"gateway": 0.2, "done": 0.8}},
    }, rate=8.0)


def test_conservation_of_transactions():
    """Every arrival is completed, lost or still inside at the end (checked over the window)."""
    result = run(_single(4.5, {"dist": "exponential", "mean": 1.0}, 5, queue=2, horizon=2_000, warmup=0, replications=3))
    for row in result.rows:
        window = 2_000
        arrived = row["system.arrival_rate"] * window
        completed = row["system.throughput"] * window
        assert arrived == pytest.approx(completed + row["system.rejected"] + row["system.in_system_at_end"], abs=1e-6)
