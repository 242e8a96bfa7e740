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
INTERVAL = 5.0


def series(name: str, horizon: str) -> list[dict[str, float]]:
    model = load_scenario(SCENARIOS / name, {"horizon": horizon})
    result = simulate(model, seed=13, replications=2, series_interval=INTERVAL, jobs=1)
    return timeseries.average(result.series)


def mean(rows: list[dict[str, float]], key: str, start: float, end: float) -> float:
    """Mean of one column over the samples in (start, end]."""
    return float(np.mean([r[key] for r in rows if start < r["t"] <= end]))


@pytest.mark.slow   # about 4 s on the SimPy engine
def test_a_slow_acquirer_exhausts_the_gateway_threads_while_its_cores_idle() -> None:
    rows = series("thread-exhaustion.yaml", "3m")   # the slowdown runs from 1m to the end
    # Theory: 3 ms of CPU and 15 + 150 ms of calls (risk, acquirer) per payment; then 450 ms.
    normal = thread_pool(200.0, 0.003, 0.165, 4, 64, 20)
    slow = thread_pool(200.0, 0.003, 0.465, 4, 64, 20)
    assert slow.p_block == pytest.approx(0.32, abs=0.01) and normal.p_block < 1e-9

    # Before the slowdown: ~33 threads busy (Poisson: sd ~6 per sample, averaged over 2 x 11
    # samples, so the mean is within ~±3 of 33); nothing fails.
    before = (0.0, 55.0)
    assert mean(rows, "stations.gateway.held", *before) == pytest.approx(normal.held, abs=6)
    assert mean(rows, "system.failures_per_s", *before) < 1.0

    # During it (after a 10 s transition): every thread held, a third of the payments
    # rejected, the cores at about 10%. Margins: the failure share over 2 x 22 samples of
    # ~700 arrivals has a standard error near 1 point; ±5 points also covers the risk
    # station's small queueing that the reference leaves out. The cores: theory 10.3%.
    during = (70.0, 180.0)
    held = mean(rows, "stations.gateway.held", *during)
    assert held > 0.9 * 64 and held == pytest.approx(slow.held, abs=4)
    failed = mean(rows, "system.failures_per_s", *during) / mean(rows, "system.arrival_rate", *during)
    assert failed == pytest.approx(slow.p_block, abs=0.05)
    cpu = mean(rows, "stations.gateway.cpu_utilization", *during)
    assert cpu == pytest.approx(slow.cpu_utilization, abs=0.02) and cpu < mean(rows, "stations.gateway.cpu_utilization",
                                                                                *before)
