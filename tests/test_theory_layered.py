"""paysim.theory for layered stations (cores, unlimited workers): which formula, exact or not,
and the numbers of paysim.thread_pool / paysim.layered by run metric name."""

from __future__ import annotations

import pytest
from conftest import assert_holm, scenario

from paysim.analytic import erlang_b, mmck
from paysim.layered import APPROXIMATION
from paysim.runner import simulate
from paysim.theory import analyse
from paysim.thread_pool import thread_pool

GAMMA = {"dist": "gamma", "mean": 0.01, "cv": 2.0}


def cpu_station(**keys: object) -> dict:
    return {"arrivals": {"req": {"rate": 700.0}},
            "stations": {"cpu": {"workers": 10, "cores": 8, "service": GAMMA, **keys}}}


def test_threads_on_cores_without_waiting_room_is_exact_for_any_work() -> None:
    """10 workers on 8 cores, no waiting room, gamma work (cv 2): M/M/8/10, insensitive."""
    theory = analyse(scenario(**cpu_station(queue=0), horizon=60, warmup=0)).stations["cpu"]
    pool = thread_pool(700.0, 0.01, 0.0, 8, 10, 0)
    assert theory.exact and APPROXIMATION not in theory.formula
    assert theory.metrics["rejection_rate"] == pytest.approx(pool.p_block, rel=1e-12)
    assert theory.metrics["W"] == pytest.approx(pool.W, rel=1e-12)
    assert theory.metrics["cpu_utilization"] == pytest.approx(pool.throughput * 0.01 / 8, rel=1e-12)
    assert theory.metrics["utilization"] == pytest.approx(pool.busy / 10, rel=1e-12)


def test_a_bounded_waiting_room_needs_exponential_work() -> None:
    """The same with 5 waiting places: M/M/8/15 for exponential work, exact; an approximation
    with gamma work (the product form is no longer insensitive once requests wait)."""
    general = analyse(scenario(**cpu_station(queue=5), horizon=60, warmup=0)).stations["cpu"]
    assert not general.exact and APPROXIMATION in general.formula
    exponential = cpu_station(queue=5)
    exponential["stations"]["cpu"]["service"] = {"dist": "exponential", "mean": 0.01}
    theory = analyse(scenario(**exponential, horizon=60, warmup=0)).stations["cpu"]
    m = mmck(700.0, 100.0, 8, 15)
    assert theory.exact and theory.metrics["W"] == pytest.approx(m.W, rel=1e-10)
    assert theory.metrics["rejection_rate"] == pytest.approx(m.p_block, rel=1e-10)


def test_a_callee_with_cores_or_unlimited_workers_is_solved_with_its_caller() -> None:
    """A gateway without waiting room calling a pure delay: Erlang B, exact; the delay's rate is
    what the gateway accepted; a callee sharing cores makes the gateway an approximation."""
    stations = {"gw": {"workers": 20, "queue": 0, "service": 0.003, "calls": ["bank"]},
                "bank": {"workers": "unlimited", "service": GAMMA}}
    theory = analyse(scenario(stations, {"req": {"rate": 1500.0}}, horizon=60, warmup=0)).stations
    blocked = erlang_b(20, 1500.0 * 0.013)
    assert theory["gw"].exact and theory["gw"].metrics["rejection_rate"] == pytest.approx(blocked, rel=1e-12)
    assert theory["bank"].metrics["arrival_rate"] == pytest.approx(1500.0 * (1 - blocked), rel=1e-9)
    stations["bank"] = {"workers": 40, "cores": 8, "service": GAMMA}
    theory = analyse(scenario(stations, {"req": {"rate": 600.0}}, horizon=60, warmup=0)).stations
    assert theory["gw"].ok and not theory["gw"].exact and APPROXIMATION in theory["gw"].formula


@pytest.mark.slow   # about 4 s on the SimPy engine
def test_threads_on_cores_held_across_a_call_match_the_product_form() -> None:
    """8 threads on 2 cores, no waiting room, gamma CPU work (cv 2) then a held call to a
    lognormal delay: the product form is insensitive to both laws, so blocking, held threads,
    cores in use and the sojourn must match it (family-wise level 0.001, Holm over four
    metrics, five replications of 2 minutes; at this seed the 95% CI half-widths are 1% (held,
    W) to 3% (blocking) of each mean, so a bias of about 5%, e.g. from cores that served held
    threads, or the M/M/N-then-delay approximation of the CPU phase, would fail)."""
    stations = {"svc": {"workers": 8, "cores": 2, "queue": 0, "service": GAMMA, "calls": ["wait"]},
                "wait": {"workers": "unlimited", "service": {"dist": "lognormal", "mean": 0.04, "cv": 1.5}}}
    model = scenario(stations, {"req": {"rate": 150.0}}, horizon=120.0, warmup=10.0, replications=5)
    theory = analyse(model).stations["svc"]
    assert theory.exact and theory.formula.startswith("threads on cores")
    result = simulate(model, jobs=1)
    assert_holm(result, {f"stations.svc.{m}": (theory.metrics[m], 0.0)
                         for m in ("rejection_rate", "held", "cpu_utilization", "W")}, alpha=0.001)
