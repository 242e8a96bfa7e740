"""The story scenarios/thread-exhaustion.yaml tells, read from its time series: while the
acquirer is slow the gateway's threads are all held waiting, its cores mostly idle, and it
rejects about a third of the payments; before, nothing fails. The references are the
thread-pool product form (paysim.thread_pool) at the normal and the slowed acquirer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paysim import timeseries
from paysim.runner import simulate
from paysim.scenario import load_scenario
from paysim.thread_pool import thread_pool

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
INTERVAL = 1.0   # samples cost no random numbers; many make the cores' 0/½/1 readings average out


def series(name: str, horizon: str) -> list[dict[str, float]]:
    """The scenario's time series with the slowdown moved to [30 s, 90 s) to keep the run short."""
    slowdown = [{"at": "30s", "for": "60s", "factor": 3}]
    model = load_scenario(SCENARIOS / name, {"horizon": horizon, "stations.acquirer.slowdowns": slowdown})
    result = simulate(model, seed=13, replications=2, series_interval=INTERVAL, jobs=1)
    return timeseries.average(result.series)


def mean(rows: list[dict[str, float]], key: str, start: float, end: float) -> float:
    """Mean of one column over the samples in (start, end] (a latency is NaN in an interval
    without successes: those are left out)."""
    return float(np.nanmean([r[key] for r in rows if start < r["t"] <= end]))


def test_a_slow_acquirer_exhausts_the_gateway_threads_while_its_cores_idle() -> None:
    rows = series("thread-exhaustion.yaml", "90s")   # the slowdown runs from 30 s to the end
    # Theory: 3 ms of CPU and 15 + 150 ms of calls (risk, acquirer) per payment; then 450 ms.
    normal = thread_pool(100.0, 0.003, 0.165, 2, 32, 10)
    slow = thread_pool(100.0, 0.003, 0.465, 2, 32, 10)
    assert slow.p_block == pytest.approx(0.32, abs=0.01) and normal.p_block < 1e-5

    # Before the slowdown: ~17 threads busy (Poisson: sd ~4 per sample, samples a few holding
    # times apart, 2 x 25 of them, so the mean is within ~±2 of 17); nothing fails.
    before = (0.0, 25.0)
    assert mean(rows, "stations.gateway.held", *before) == pytest.approx(normal.held, abs=4)
    assert mean(rows, "system.failures_per_s", *before) < 1.0

    # During it (after a 10 s transition): every thread held, a third of the payments
    # rejected, the cores at about 10%. Margins: the failure share over 2 x 50 s of ~100
    # arrivals each has a standard error near 2 points; ±6 points also covers the risk
    # station's small queueing that the reference leaves out. The cores: theory 10.3%; a
    # sample reads 0, ½ or 1 (sd ~0.2), so 100 samples leave a standard error near 0.02.
    during = (40.0, 90.0)
    held = mean(rows, "stations.gateway.held", *during)
    assert held > 0.9 * 32 and held == pytest.approx(slow.held, abs=2)
    failed = mean(rows, "system.failures_per_s", *during) / mean(rows, "system.arrival_rate", *during)
    assert failed == pytest.approx(slow.p_block, abs=0.06)
    cpu = mean(rows, "stations.gateway.cpu_utilization", *during)
    assert cpu == pytest.approx(slow.cpu_utilization, abs=0.06) and cpu < 0.25   # the cores mostly idle


def test_a_timeout_and_a_breaker_contain_it() -> None:
    rows = series("thread-exhaustion-breaker.yaml", "110s")   # the acquirer recovers at 90 s
    during, after = (40.0, 90.0), (100.0, 110.0)
    # The threads stay free: with the breaker open nearly all the time a payment holds a
    # thread for risk's 15 ms plus a rare probe (at most 500 ms); the exhaustion holds 32.
    # A bound of 10 is about three times what this seed shows and a third of the pool.
    assert mean(rows, "stations.gateway.held", *during) < 10
    assert mean(rows, "stations.gateway.queue", *during) < 1          # exhausted: ~9 of 10 places taken
    # The payments fail fast instead (breaker_open, or a probe's timeout): far more than the
    # third rejected without a breaker, which is the price; then, 10 s after the acquirer
    # recovers, the breaker has closed and only the 0.3% normal timeouts fail (~0.3/s).
    assert mean(rows, "system.failures_per_s", *during) > 0.5 * mean(rows, "system.arrival_rate", *during)
    assert mean(rows, "system.failures_per_s", *after) < 2.0
    assert mean(rows, "system.latency.p99", *during) < 0.6           # no payment waits past the 500 ms timeout by much
