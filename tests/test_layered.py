"""Tests for the layered mean-value approximation (paysim.layered): limiting cases that must be
exact, hand-computed fixed points, and the honesty of its labels."""

from __future__ import annotations

import math

import pytest
from conftest import scenario
from scipy.optimize import brentq

from paysim.analytic import _mmck_probabilities, erlang_b, mg1, mmc, mmck
from paysim.layered import (
    APPROXIMATION,
    CallStep,
    Task,
    goetz_threads,
    join_mean,
    solve_layered,
    throughput_bound,
)
from paysim.runner import simulate
from paysim.thread_pool import thread_pool


def call(*targets: str, join: str = "all") -> CallStep:
    return CallStep(tuple(targets), join)  # type: ignore[arg-type]


@pytest.mark.parametrize(("rate", "mean", "servers"), [(8.0, 0.1, 1), (25.0, 0.1, 3), (90.0, 0.02, 2)])
def test_no_calls_is_plain_mmc(rate: float, mean: float, servers: int) -> None:
    """Without calls or cores a task is its textbook station: M/M/c, exactly and labelled exact."""
    result = solve_layered({"a": Task(service=mean, arrival_rate=rate, workers=servers)})["a"]
    expected = mmc(rate, 1 / mean, servers)
    assert result.W == pytest.approx(expected.W, rel=1e-12)
    assert result.Wq == pytest.approx(expected.Wq, rel=1e-12, abs=1e-15)
    assert result.busy == pytest.approx(rate * mean) and result.held == 0.0
    assert result.exact and APPROXIMATION not in result.formula


@pytest.mark.parametrize("scv", [0.0, 1.0, 4.0])
def test_erlang_b_insensitive_to_the_callee_distribution(scv: float) -> None:
    """A gateway without waiting room that calls a pure delay: blocking is Erlang B at load
    λ·(S + D) whatever the delay's distribution (insensitivity), and is labelled exact."""
    tasks = {"gateway": Task(service=0.003, arrival_rate=100.0, workers=20, queue=0, calls=(call("bank"),)),
             "bank": Task(service=0.2, service_scv=scv, workers=None)}
    result = solve_layered(tasks)
    gateway = result["gateway"]
    assert gateway.p_block == pytest.approx(erlang_b(20, 100.0 * 0.203), rel=1e-12)
    assert gateway.exact and "Erlang B" in gateway.formula
    # the bank only sees the calls the gateway accepted; each is held for the bank's 200 ms
    assert result["bank"].arrival_rate == pytest.approx(gateway.throughput, rel=1e-9)
    assert gateway.held == pytest.approx(gateway.throughput * 0.2, rel=1e-9)
    assert gateway.busy == pytest.approx(gateway.throughput * 0.203, rel=1e-9)


def test_a_callee_with_enough_workers_is_a_delay() -> None:
    """A callee with at least as many workers as its only caller can never queue: still exact.
    With one worker fewer it can, and the caller's result becomes an approximation."""
    def model(bank_workers: int) -> dict:
        return solve_layered({
            "gateway": Task(service=0.003, arrival_rate=100.0, workers=20, queue=0, calls=(call("bank"),)),
            "bank": Task(service=0.2, workers=bank_workers)})
    enough, short = model(20)["gateway"], model(19)["gateway"]
    assert enough.exact and enough.p_block == pytest.approx(erlang_b(20, 100.0 * 0.203), rel=1e-12)
    assert not short.exact and APPROXIMATION in short.formula


def test_mg1_caller_of_a_delay_is_exact() -> None:
    """One worker, unbounded queue, calling a delay: M/G/1 with the holding's exact scv
    (Var = Var(S) + Var(D) for independent parts)."""
    tasks = {"a": Task(service=0.02, service_scv=1.0, arrival_rate=10.0, workers=1, calls=(call("d"),)),
             "d": Task(service=0.03, service_scv=0.0, workers=None)}
    result = solve_layered(tasks)["a"]
    scv = (0.02**2) / 0.05**2  # exponential 20 ms plus a constant 30 ms
    assert result.W == pytest.approx(mg1(10.0, 0.05, scv).W, rel=1e-12)
    assert result.exact


def test_unlimited_caller_adds_the_callee_response() -> None:
    """Hand-computed: an unlimited caller (M/G/∞) calling an M/M/1 callee at λ = 20, μ = 50:
    R_callee = 1/(50 - 20) s, so the caller's response is 5 ms + 1/30 s."""
    tasks = {"front": Task(service=0.005, arrival_rate=20.0, workers=None, calls=(call("risk"),)),
             "risk": Task(service=0.02, workers=1)}
    result = solve_layered(tasks)
    assert result["risk"].W == pytest.approx(1 / 30, rel=1e-9)
    assert result["front"].W == pytest.approx(0.005 + 1 / 30, rel=1e-9)
    assert not result["front"].exact  # the callee queues: the holding times are correlated


def test_fixed_point_matches_an_independent_root() -> None:
    """A caller with 2 workers and no waiting room in front of an M/M/1 callee (μ = 40): the
    callee's load depends on the caller's blocking. The fixed point X = λ(1 - B),
    B = ErlangB(2, λ/(40 - X)) solved here by bracketing must be what the solver finds."""
    lam = 30.0

    def excess(x: float) -> float:
        return x - lam * (1 - erlang_b(2, lam / (40.0 - x)))

    x = brentq(excess, 0.0, 39.999, xtol=1e-14)
    result = solve_layered({"gw": Task(service=0.0, arrival_rate=lam, workers=2, queue=0, calls=(call("db"),)),
                            "db": Task(service=1 / 40, workers=1)})
    assert result["gw"].throughput == pytest.approx(x, rel=1e-8)
    assert result["db"].arrival_rate == pytest.approx(x, rel=1e-8)
    assert not result["db"].exact  # fed by the caller's output, not Poisson


def test_a_rejected_call_ends_the_calls() -> None:
    """A call refused by a full callee fails the visit: the next step is reached only by the
    accepted share, and a refused call holds the worker for no time."""
    tasks = {"front": Task(service=0.0, arrival_rate=50.0, workers=None, calls=(call("lossy"), call("next"))),
             "lossy": Task(service=0.05, service_scv=0.0, workers=2, queue=0), "next": Task(service=0.01, workers=None)}
    result = solve_layered(tasks)
    blocked = erlang_b(2, 50.0 * 0.05)
    assert result["next"].arrival_rate == pytest.approx(50.0 * (1 - blocked), rel=1e-12)
    assert result["front"].holding == pytest.approx((1 - blocked) * (0.05 + 0.01), rel=1e-12)
    assert result["front"].p_fail == pytest.approx(blocked, rel=1e-12)


def test_join_means() -> None:
    """E[max] of k i.i.d. exponentials of mean 1 is the harmonic number H_k; E[min] of
    exponentials is 1/Σ rates; a branch that answers at once makes join-any instant."""
    assert join_mean((1.0, 1.0), "all") == pytest.approx(1.5)
    assert join_mean((1.0, 1.0, 1.0), "all") == pytest.approx(1 + 1 / 2 + 1 / 3)
    assert join_mean((1.0, 2.0), "all") == pytest.approx(1 + 2 - 1 / 1.5)
    assert join_mean((1.0, 2.0), "any") == pytest.approx(2 / 3)
    assert join_mean((0.0, 2.0), "any") == 0.0 and join_mean((0.0, 2.0), "all") == pytest.approx(2.0)


@pytest.mark.parametrize("scv", [0.0, 1.0, 3.0])
def test_cores_with_unlimited_workers_is_mmn(scv: float) -> None:
    """N cores shared by unlimited workers, no calls: multi-server processor sharing, whose
    mean sojourn is M/M/N's for any service distribution; labelled exact."""
    result = solve_layered({"cpu": Task(service=0.01, service_scv=scv, arrival_rate=700.0, workers=None, cores=8)})["cpu"]
    assert result.W == pytest.approx(mmc(700.0, 100.0, 8).W, rel=1e-12)
    assert result.cpu_utilization == pytest.approx(700.0 * 0.01 / 8)
    assert result.exact


def test_cores_that_never_bind() -> None:
    """With no more workers than cores every worker computes at full speed: plain M/M/c."""
    result = solve_layered({"a": Task(service=0.1, arrival_rate=25.0, workers=3, cores=4)})["a"]
    assert result.W == pytest.approx(mmc(25.0, 10.0, 3).W, rel=1e-12)


def test_thread_pool_without_calls_is_mmn_k() -> None:
    """No waits: n threads share N cores, the chain of M/M/N/(c+K); no waiting room: M/M/N/c
    (insensitive); unbounded queue: M/M/N's sojourn, the tail past c waiting for a thread."""
    loss, m = thread_pool(600.0, 0.01, 0.0, 8, 10, 0), mmck(600.0, 100.0, 8, 10)
    assert loss.p_block == pytest.approx(m.p_block, rel=1e-12) and loss.W == pytest.approx(m.W, rel=1e-12)
    bounded, m = thread_pool(700.0, 0.01, 0.0, 8, 12, 30), mmck(700.0, 100.0, 8, 42)
    assert bounded.p_block == pytest.approx(m.p_block, rel=1e-10) and bounded.W == pytest.approx(m.W, rel=1e-10)
    assert bounded.Lq == pytest.approx(sum(max(n - 12, 0) * p for n, p in enumerate(_mmck_probabilities(7.0, 8, 42))))
    unbounded = thread_pool(700.0, 0.01, 0.0, 8, 12, None)
    assert unbounded.W == pytest.approx(mmc(700.0, 100.0, 8).W, rel=1e-10)
    assert unbounded.Lq == pytest.approx(sum(max(n - 12, 0) * p for n, p in enumerate(_mmck_probabilities(7.0, 8, 4000))))
    with pytest.raises(ValueError, match="cannot keep up"):
        thread_pool(900.0, 0.01, 0.0, 8, 12, None)


def test_thread_pool_with_enough_cores_is_erlang_b() -> None:
    """When the cores never bind (N >= c) both phases are infinite-server: the busy threads are
    Poisson truncated at c, so the blocking is Erlang B at λ(C + D)."""
    pool = thread_pool(100.0, 0.003, 0.2, 32, 20, 0)
    assert pool.p_block == pytest.approx(erlang_b(20, 100.0 * 0.203), rel=1e-12)
    assert pool.held == pytest.approx(pool.throughput * 0.2, rel=1e-12)  # Little at the waiting node
    assert pool.computing == pytest.approx(pool.throughput * 0.003, rel=1e-12)


def test_thread_pool_hand_computed() -> None:
    """c = 2 threads on N = 1 core, λ = 10, C = 0.05, D = 0.1 (a1 = 0.5, a2 = 1), no waiting room.
    Weights w(n1, n2) = a1^n1 / n1!·(N-limited) · a2^n2 / n2!: (0,0) 1; (1,0) .5; (0,1) 1;
    (2,0) .5²/1 = .25 (one core: 1·1); (1,1) .5; (0,2) .5. Total 3.75; full (n = 2): 1.25."""
    pool = thread_pool(10.0, 0.05, 0.1, 1, 2, 0)
    assert pool.p_block == pytest.approx(1.25 / 3.75)
    assert pool.computing == pytest.approx((0.5 + 2 * 0.25 + 0.5) / 3.75)
    assert pool.held == pytest.approx((1 + 0.5 + 2 * 0.5) / 3.75)


def test_threads_on_cores_calling_a_delay() -> None:
    """Goetz's case: 200 threads on 8 cores calling a 150 ms delay, no waiting room: the
    thread-pool product form, exact (insensitive); the threads mostly wait, the cores idle.
    Calling a callee that can queue makes it an approximation."""
    tasks = {"gw": Task(service=0.003, arrival_rate=1000.0, workers=200, queue=0, cores=8, calls=(call("bank"),)),
             "bank": Task(service=0.15, service_scv=0.5, workers=None)}
    gw, pool = solve_layered(tasks)["gw"], thread_pool(1000.0, 0.003, 0.15, 8, 200, 0)
    assert gw.p_block == pytest.approx(pool.p_block, rel=1e-12) and gw.W == pytest.approx(pool.W, rel=1e-12)
    assert gw.held == pytest.approx(pool.held, rel=1e-12) and gw.exact
    assert gw.cpu_utilization < 0.4 and gw.held / gw.busy > 0.9
    queued = solve_layered({**tasks, "bank": Task(service=0.15, workers=190)})["gw"]
    assert not queued.exact and APPROXIMATION in queued.formula


def test_refusals() -> None:
    with pytest.raises(ValueError, match="cycle: a -> b -> a"):
        solve_layered({"a": Task(service=0.1, calls=(call("b"),)), "b": Task(service=0.1, calls=(call("a"),))})
    with pytest.raises(ValueError, match="unknown"):
        solve_layered({"a": Task(service=0.1, calls=(call("zz"),))})
    with pytest.raises(ValueError, match="saturated"):
        solve_layered({"a": Task(service=0.0, arrival_rate=30.0, workers=None, calls=(call("b"),)),
                       "b": Task(service=0.05, workers=1)})


def test_bounded_caller_keeps_an_overloaded_callee_stable() -> None:
    """The callee alone could not take the offered 30/s (μ = 25), but the caller's blocking
    throttles it: the fixed point has the callee below saturation and finite responses."""
    result = solve_layered({"gw": Task(service=0.0, arrival_rate=30.0, workers=3, queue=0, calls=(call("db"),)),
                            "db": Task(service=0.04, workers=1)})
    assert result["db"].arrival_rate < 25.0 and math.isfinite(result["gw"].W)
    assert result["db"].arrival_rate == pytest.approx(result["gw"].throughput, rel=1e-8)


def test_goetz_is_where_the_two_bounds_meet() -> None:
    """threads = N(1 + W/C); below it the threads bound throughput (c/(C + W)), above it the
    cores do (N/C), and at it the two bounds are equal."""

    threads = goetz_threads(4, 0.010, 0.040)
    assert threads == pytest.approx(20.0)
    assert throughput_bound(20, 4, 0.010, 0.040) == pytest.approx(400.0) == pytest.approx(20 / 0.050)
    assert throughput_bound(10, 4, 0.010, 0.040) == pytest.approx(200.0)
    assert throughput_bound(64, 4, 0.010, 0.040) == pytest.approx(400.0)


def test_a_held_call_to_unlimited_workers_follows_the_same_path_on_both_engines() -> None:
    """A gateway without waiting room holding its threads across a call to a pure delay, then
    a station whose threads share 2 cores: the compiled engine (whose heap room once counted
    the delay's 2^40 'workers') and SimPy give the same numbers on one seed, time series
    included (held workers and cores in use at each sample), and blocking is near Erlang B at
    λ(S + D) = 8 erlangs."""
    model = scenario({"gw": {"workers": 10, "queue": 0, "service": {"dist": "exponential", "mean": 0.01},
                             "calls": ["bank"], "next": "cpu"},
                      "bank": {"workers": "unlimited", "service": {"dist": "lognormal", "mean": 0.19, "cv": 1.0}},
                      "cpu": {"workers": 6, "cores": 2, "service": {"dist": "exponential", "mean": 0.03}}},
                     {"pay": {"rate": 40.0}}, horizon=60.0, warmup=5.0, replications=1)
    runs = [simulate(model, jobs=1, engine=engine, series_interval=2.0) for engine in ("fast", "simpy")]
    rows = [run.rows[0] for run in runs]
    for key in ("stations.gw.rejection_rate", "stations.gw.held", "stations.gw.W", "stations.bank.throughput",
                "stations.cpu.cpu_utilization"):
        assert rows[0][key] == pytest.approx(rows[1][key], rel=1e-9), key
    fast, slow = runs[0].series[0], runs[1].series[0]
    assert len(fast) == len(slow) and {"stations.gw.held", "stations.cpu.cpu_utilization"} <= set(fast[0])
    for a, b in zip(fast, slow):
        assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], rel=1e-9, nan_ok=True) for k in a)
    assert rows[0]["stations.gw.rejection_rate"] == pytest.approx(erlang_b(10, 8.0), abs=0.05)   # one short run
