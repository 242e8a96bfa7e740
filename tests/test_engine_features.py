"""Executors, batches, instances behind balancers, queue disciplines, worker schedules, risk
classification, parallel calls, closed populations: each against an exact or textbook answer.

Deterministic scenarios put every event on a grid of 1/16 s (sums of binary fractions are
exact in floating point) and sample the time series off that grid, so no two events tie
and each expected value is worked out by hand in the comments. Statistical assertions use
the 99.9% CI over replications with a fixed seed (see conftest.py).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import pytest
from conftest import assert_little, assert_theory, interval, run, scenario
from scipy import stats
from scipy.optimize import brentq

from paysim.analytic import mmc, mva, priority_mg1
from paysim.distributions import Lognormal
from paysim.runner import simulate
from paysim.scenario import load_scenario

FULL = Path(__file__).parent / "data" / "full-language.yaml"   # every feature of the language
SAMPLE = 0.0997    # a sampling step that never lands on the 1/16 s event grid within the horizons used


def _step(t: float, changes: list[tuple[float, float]]) -> float:
    """A piecewise-constant function that is 0 before its first change."""
    value = 0.0
    for at, new in changes:
        if t >= at:
            value = new
    return value


def _check_series(result, station: str, column: str, changes: list[tuple[float, float]]) -> None:
    for row in result.series[0]:
        expected = _step(row["t"], changes)
        assert row[f"stations.{station}.{column}"] == expected, f"{column} at t={row['t']:.4f}: expected {expected}"


def _integral(changes: list[tuple[float, float]], end: float) -> float:
    """∫_0^end of _step(t, changes) dt."""
    total = 0.0
    for (at, value), (following, _) in zip(changes, changes[1:] + [(end, 0.0)]):
        total += value * (min(following, end) - at)
    return total


# ---------------------------------------------------------------- executor (ThreadPoolExecutor)

# 15 tasks of 17/16 s arrive every 1/8 s (t = 1/8 ... 15/8) at core 2, max 4, queue 3:
#   1/8, 2/8      threads 1 and 2 start (fewer than core)
#   3/8, 4/8, 5/8 queue (1, 2, 3): no thread above core yet
#   6/8, 7/8      queue full: threads 3 and 4 start with the new task
#   8/8, 9/8      queue full, 4 threads: rejected
#   19/16         thread 1 ends task 1, takes task 3 (waited 13/16)      queue 2
#   10/8          task 10 queues                                          queue 3
#   21/16         thread 2 ends task 2, takes task 4 (waited 13/16)      queue 2
#   11/8          task 11 queues                                          queue 3
#   12/8..14/8    rejected
#   29/16         thread 3 takes task 5 (waited 19/16)                    queue 2
#   15/8          task 15 queues                                          queue 3
#   31/16         thread 4 takes task 10 (waited 11/16)                   queue 2
#   36/16, 38/16  threads 1, 2 take tasks 11 (waited 14/16) and 15 (waited 8/16)
#   46/16 .. 55/16 the four threads go idle; the two above core retire keep_alive later.
ARRIVALS_2S = {"rate": 8, "process": "deterministic", "profile": [{"at": 0, "x": 1}, {"at": 2, "x": 0}]}
QUEUE = [(0.375, 1), (0.5, 2), (0.625, 3), (1.1875, 2), (1.25, 3), (1.3125, 2), (1.375, 3), (1.8125, 2),
         (1.875, 3), (1.9375, 2), (2.25, 1), (2.375, 0)]
BUSY = [(0.125, 1), (0.25, 2), (0.75, 3), (0.875, 4), (2.875, 3), (3.0, 2), (3.3125, 1), (3.4375, 0)]


def _executor(executor: dict, arrival: dict | None = None, horizon: float = 6.0):
    model = scenario({"x": {"service": 1.0625, "executor": executor}}, {"a": arrival or ARRIVALS_2S},
                     horizon=horizon, warmup=0, replications=1)
    return simulate(model, jobs=1, series_interval=SAMPLE)


@pytest.mark.parametrize("keep_alive", [1.0, 0.25])
def test_executor_fills_its_queue_before_starting_threads_above_core(keep_alive):
    result = _executor({"core": 2, "max": 4, "queue": 3, "keep_alive": keep_alive})
    # threads 3 and 4 retire keep_alive after they went idle (at 46/16 and 48/16); the
    # core threads, idle from 53/16 and 55/16, stay
    threads = [(0.125, 1), (0.25, 2), (0.75, 3), (0.875, 4), (2.875 + keep_alive, 3), (3.0 + keep_alive, 2)]
    _check_series(result, "x", "threads", threads)
    _check_series(result, "x", "queue", QUEUE)
    _check_series(result, "x", "busy", BUSY)
    row = result.rows[0]
    assert row["stations.x.threads"] == pytest.approx(_integral(threads, 6.0) / 6.0)
    assert row["stations.x.rejected"] == 5
    assert row["streams.a.rejected"] == 5
    assert row["stations.x.throughput"] * 6 == pytest.approx(10)
    assert row["stations.x.Wq"] == pytest.approx((13 + 13 + 19 + 11 + 14 + 8) / 16 / 10)
    assert row["stations.x.busy"] == pytest.approx(_integral(BUSY, 6.0) / 6.0)


def test_executor_with_an_unbounded_queue_never_grows_past_core():
    # the classic surprise: max 4 is never used, because an unbounded queue is never full
    result = _executor({"core": 2, "max": 4}, horizon=10.0)
    _check_series(result, "x", "threads", [(0.125, 1), (0.25, 2)])
    assert max(row["stations.x.busy"] for row in result.series[0]) == 2
    # at 15/8: tasks 3..15 queued, minus the two taken at 19/16 and 21/16
    assert max(row["stations.x.queue"] for row in result.series[0]) == 11
    row = result.rows[0]
    assert row["stations.x.rejected"] == 0
    assert row["stations.x.throughput"] * 10 == pytest.approx(15)   # back to back on 2 threads: the last ends at 8.625 s
    assert row["stations.x.threads"] == pytest.approx((0.125 + 2 * (10 - 0.25)) / 10)


def test_a_cached_pool_reuses_idle_threads_through_its_zero_capacity_queue():
    # core 0, max 2, a SynchronousQueue (queue: 0): a task every second taking 0.5 s is always
    # handed to the one idle thread (polling within keep_alive); none is rejected, no second
    # thread ever starts
    model = scenario({"x": {"service": 0.5, "executor": {"core": 0, "max": 2, "queue": 0, "keep_alive": 10}}},
                     {"a": {"rate": 1, "process": "deterministic"}}, horizon=20, warmup=0, replications=1)
    row = run(model).rows[0]
    assert row["stations.x.rejected"] == 0
    assert row["stations.x.throughput"] * 20 == pytest.approx(19)
    assert row["stations.x.threads"] == pytest.approx(19 / 20)   # one thread from t = 1


def test_executor_core_zero_with_an_idle_thread_retires_it_after_keep_alive():
    # core 0 with an unbounded queue: Java starts one thread for queued work; it retires
    # keep_alive after each idle spell, and the next task starts a new one
    model = scenario({"x": {"service": 0.5, "executor": {"core": 0, "max": 3, "keep_alive": 2}}},
                     {"a": {"interarrival": 4.0}}, horizon=20, warmup=0, replications=1)
    result = simulate(model, jobs=1, series_interval=SAMPLE)
    # tasks at 4, 8, 12, 16: each thread lives from the task's start to 2 s after its end
    _check_series(result, "x", "threads", [(4, 1), (6.5, 0), (8, 1), (10.5, 0), (12, 1), (14.5, 0), (16, 1), (18.5, 0)])
    assert result.rows[0]["stations.x.Wq"] == 0


class Fates(NamedTuple):
    """What became of the 15 tasks offered to the pool; ``wait`` is the served tasks' total queueing time."""
    station_rejected: int
    abandoned: int
    rejected: int
    timed_out: int
    served: int
    wait: float


# (policy, client timeout) -> what the 5 tasks that met a full pool became
REJECTIONS = {
    # abort: rejected at once, counted at the station; the client hears it at once
    ("abort", None): Fates(station_rejected=5, abandoned=0, rejected=5, timed_out=0, served=10, wait=78 / 16),
    ("abort", 3.0): Fates(station_rejected=5, abandoned=0, rejected=5, timed_out=0, served=10, wait=78 / 16),
    # caller_runs: the submitting thread runs it (no wait, no pool thread): all 15 served
    ("caller_runs", None): Fates(station_rejected=0, abandoned=0, rejected=0, timed_out=0, served=15, wait=78 / 16),
    # discard: dropped silently; the client learns at its timeout, or at once without one
    ("discard", None): Fates(station_rejected=5, abandoned=0, rejected=5, timed_out=0, served=10, wait=78 / 16),
    ("discard", 3.0): Fates(station_rejected=5, abandoned=0, rejected=0, timed_out=5, served=10, wait=78 / 16),
    # discard_oldest: tasks 3, 4, 9, 10, 11 are dropped from the head of the queue, the new one queues;
    # served tasks 5, 8, 12, 13, 14, 15 waited 9, 5, 5, 5, 8, 8 sixteenths. A drop is a rejection at
    # the station as for the stream (one outcome, one name), of 15 tasks offered
    ("discard_oldest", None): Fates(station_rejected=5, abandoned=0, rejected=5, timed_out=0, served=10, wait=40 / 16),
    ("discard_oldest", 3.0): Fates(station_rejected=5, abandoned=0, rejected=0, timed_out=5, served=10, wait=40 / 16),
}


@pytest.mark.parametrize("policy,timeout", list(REJECTIONS))
def test_executor_rejection_policies(policy, timeout):
    expected = REJECTIONS[(policy, timeout)]
    arrival = {**ARRIVALS_2S, **({"timeout": timeout} if timeout else {})}
    result = _executor({"core": 2, "max": 4, "queue": 3, "keep_alive": 1.0, "rejection": policy}, arrival)
    row = result.rows[0]
    assert row["stations.x.rejected"] == expected.station_rejected
    assert row["stations.x.abandoned"] == expected.abandoned
    assert row["stations.x.rejection_rate"] == pytest.approx(expected.station_rejected / 15)
    assert row["stations.x.arrival_rate"] * 6 == pytest.approx(15)
    assert row["streams.a.rejected"] == expected.rejected
    assert row["streams.a.timed_out"] == expected.timed_out
    assert row["streams.a.goodput"] * 6 == pytest.approx(expected.served)
    assert row["stations.x.throughput"] * 6 == pytest.approx(expected.served)
    assert row["stations.x.Wq"] == pytest.approx(expected.wait / expected.served)
    assert row["system.failure_rate"] == pytest.approx((15 - expected.served) / 15)
    # the pool itself runs the same tasks at the same times whatever happens to the others
    _check_series(result, "x", "threads", [(0.125, 1), (0.25, 2), (0.75, 3), (0.875, 4), (3.875, 3), (4.0, 2)])


def _executor_instances():
    # two instances of a core-2 pool, round robin: each gets a 7/16 s task every 1/2 s, so one
    # thread works while Java still starts the second core thread for the next task
    model = scenario({"x": {"service": 0.4375, "instances": 2, "executor": {"core": 2, "max": 2}}},
                     {"a": {"rate": 4, "process": "deterministic"}}, horizon=20, warmup=5, replications=1)
    return run(model).rows[0]


def test_executor_instances_count_the_threads_of_every_instance():
    row = _executor_instances()
    assert row["stations.x.threads"] == 4
    assert row["stations.x.busy"] == pytest.approx(2 * 0.4375 / 0.5)


def test_executor_instances_utilization_counts_every_instance():
    assert _executor_instances()["stations.x.utilization"] == pytest.approx(1.75 / 4)


@pytest.mark.parametrize("core,max_threads", [(4, 4), (2, 8)])
def test_executor_with_unbounded_queue_is_erlang_c_at_core_threads(core, max_threads):
    # core = max = 4 is M/M/4; core 2, max 8 with an unbounded queue is M/M/2, not M/M/8
    mu, lam = 100.0, 0.75 * core * 100.0
    model = scenario({"x": {"service": {"dist": "exponential", "mean": 1 / mu},
                            "executor": {"core": core, "max": max_threads}}},
                     {"a": {"rate": lam}}, horizon=60, warmup=5)
    result = run(model)
    theory = mmc(lam, mu, core)
    assert_theory(result, "stations.x.Wq", theory.Wq)
    assert_theory(result, "stations.x.Lq", theory.Lq)
    assert all(row["stations.x.threads"] == core for row in result.rows)
    assert_little(result)


# ---------------------------------------------------------------- batches

def _batch(batch: dict, arrival: dict, horizon: float = 110.0, warmup: float = 10.0, replications: int = 1):
    model = scenario({"settle": {"batch": batch, "service": {"per_batch": 0.25, "per_item": 0.03125}}},
                     {"a": arrival}, horizon=horizon, warmup=warmup, replications=replications)
    return run(model)


def test_size_triggered_batches_are_exact():
    # items every 1/8 s; every 4th closes a batch, which takes 1/4 + 4/32 = 3/8 s: the items
    # waited 3/8, 2/8, 1/8, 0 for it; the worker is busy 3/8 of every 1/2 s
    row = _batch({"size": 4}, {"rate": 8, "process": "deterministic"}).rows[0]
    assert row["stations.settle.batch_size"] == 4
    assert row["stations.settle.Wq"] == pytest.approx(0.1875)
    assert row["stations.settle.W"] == pytest.approx(0.1875 + 0.375)
    assert row["stations.settle.utilization"] == pytest.approx(0.75)
    assert row["stations.settle.throughput"] == pytest.approx(8, abs=4 / 100)
    # busy counts workers (one, busy 3/4 of the time), as utilization = busy / workers says; the
    # offered load is the work offered in worker-seconds per second, the batch's own 1/4 s shared
    # by its 4 items: 8/s x (1/16 + 1/32). Items in service would read 3 (4 items for 3/4 of the time).
    assert row["stations.settle.busy"] == pytest.approx(0.75)
    assert row["stations.settle.offered_load"] == pytest.approx(0.75)
    assert row["stations.settle.L"] - row["stations.settle.Lq"] == pytest.approx(3.0)


# items at odd sixteenths of a second (3/16, 5/16, ...): a zero-rate first 1/16 s shifts them
# off the whole seconds where the batch timer ticks
OFF_GRID = {"rate": 8, "process": "deterministic", "profile": [{"at": 0, "x": 0}, {"at": 0.0625, "x": 1}]}


def test_time_triggered_batches_are_exact():
    # each second's 8 items (waits 15/16, 13/16, ..., 1/16: mean 1/2) close at the tick and
    # take 1/4 + 8/32 = 1/2 s
    row = _batch({"every": 1.0}, OFF_GRID).rows[0]
    assert row["stations.settle.batch_size"] == 8
    assert row["stations.settle.Wq"] == pytest.approx(0.5)
    assert row["stations.settle.W"] == pytest.approx(1.0)
    assert row["stations.settle.utilization"] == pytest.approx(0.5)


def test_size_and_time_triggers_together():
    # each second: items 1-5 close by size at 9/16 (waits 8,6,4,2,0 sixteenths; 13/32 s of work),
    # items 6-8 at the tick (waits 5,3,1; 11/32 s): the worker never has to queue a batch
    row = _batch({"size": 5, "every": 1.0}, OFF_GRID).rows[0]
    assert row["stations.settle.batch_size"] == 4
    assert row["stations.settle.Wq"] == pytest.approx(29 / 16 / 8)
    assert row["stations.settle.S"] == pytest.approx((5 * 13 / 32 + 3 * 11 / 32) / 8)
    assert row["stations.settle.utilization"] == pytest.approx(24 / 32)


def test_first_item_timer_restarts_with_each_batch():
    # timer: first_item, size 5, every 1 s: five items (8/16 s apart from first to last) always
    # fill a batch before its timer, so every batch has 5 (waits 8, 6, 4, 2, 0 sixteenths), where
    # the fixed clock above cut every second's eight items into 5 + 3
    row = _batch({"size": 5, "every": 1.0, "timer": "first_item"}, OFF_GRID).rows[0]
    assert row["stations.settle.batch_size"] == 5
    assert row["stations.settle.Wq"] == pytest.approx(0.25)
    # 1/4 + 5/32 s of work every 5 items (10/16 s): busy 13/20, give or take the window's edges
    assert row["stations.settle.utilization"] == pytest.approx(13 / 20, abs=0.01)


@pytest.mark.parametrize("timer,size", [("clock", 35), ("first_item", 50)])
def test_fifty_items_or_every_seven_seconds(timer, size):
    # 10 items a second: 50 gather in 5 s. The fixed clock then closes the next batch at its tick
    # 2 s later with 20 items (50, 20, 50, 20, ...: 35 on average); timed from the first item,
    # every batch fills to 50 first. One worker, 1 s + 10 ms per item: busy 0.38 or 0.30, and
    # offered_load (work offered, in workers) the same, not λ·(per_batch + per_item) = 10.1.
    model = scenario({"s": {"batch": {"size": 50, "every": 7, "timer": timer},
                            "service": {"per_batch": 1.0, "per_item": 0.01}}},
                     {"a": {"rate": 10, "process": "deterministic", "profile": [{"at": 0, "x": 0}, {"at": 0.03, "x": 1}]}},
                     horizon=700, warmup=0, replications=1)
    row = run(model).rows[0]
    assert row["stations.s.batch_size"] == pytest.approx(size, rel=0.01)
    busy = (1.0 / size + 0.01) * 10          # per second: batches of `size` at 10/size a second
    assert row["stations.s.busy"] == pytest.approx(busy, rel=0.01)
    assert row["stations.s.offered_load"] == pytest.approx(busy, rel=0.01)


@pytest.mark.parametrize("timer,size", [("first_item", 8), ("clock", 7.5)])
def test_first_item_timer_against_the_clock(timer, size):
    # every 15/16 s: from the first item a batch gathers the items at 0, 2/16, ..., 14/16 after it
    # (8 items, waits 15, 13, ..., 1 sixteenths: mean 1/2 s) and the next item opens the next
    # one; the fixed clock's ticks drift across the items, giving batches of 7 and 8 (8 items a
    # second, 16/15 ticks a second: 7.5 on average)
    row = _batch({"every": 0.9375, "timer": timer}, OFF_GRID).rows[0]
    assert row["stations.settle.batch_size"] == pytest.approx(size, rel=0.01)
    if timer == "first_item":
        assert row["stations.settle.Wq"] == pytest.approx(0.5)


def test_time_triggered_batches_of_poisson_arrivals():
    # Poisson λ, a tick every T: an item waits T/2 on average for the tick; the number of items in
    # the batch of a random item is 1 + Poisson(λT) (size bias); batches are not empty with
    # probability 1 - e^{-λT}. Batches take less than T, so none waits for the worker.
    lam, every, per_batch, per_item = 4.0, 1.0, 0.25, 0.03125
    result = _batch({"every": every}, {"rate": lam}, horizon=1000, warmup=0, replications=10)
    nonempty = 1 - math.exp(-lam * every)
    assert_theory(result, "stations.settle.Wq", every / 2)
    assert_theory(result, "stations.settle.S", per_batch + per_item * (lam * every + 1))
    assert_theory(result, "stations.settle.batch_size", lam * every / nonempty)
    assert_theory(result, "stations.settle.utilization", (per_batch * nonempty + per_item * lam * every) / every)
    # one worker: busy workers = utilization; all offered work is done, so offered load = busy
    assert_theory(result, "stations.settle.busy", (per_batch * nonempty + per_item * lam * every) / every)
    assert_theory(result, "stations.settle.offered_load", (per_batch * nonempty + per_item * lam * every) / every)


# ---------------------------------------------------------------- instances behind a balancer

def _balanced(instances: int, workers: int, balance: str, lam: float, mu: float, horizon: float = 30,
              warmup: float = 3):
    model = scenario({"x": {"workers": workers, "instances": instances, "balance": balance,
                            "service": {"dist": "exponential", "mean": 1 / mu}}},
                     {"a": {"rate": lam}}, horizon=horizon, warmup=warmup)
    return run(model)


def _erlang_k_m1_wait(k: int, lam: float, mu: float) -> float:
    """E_k/M/1 (GI/M/1 with Erlang-k gaps of phase rate lam): Wq = σ/(μ(1-σ)), σ = (λ/(λ+μ(1-σ)))^k."""
    sigma = brentq(lambda s: s - (lam / (lam + mu * (1 - s))) ** k, 1e-12, 1 - 1e-9)
    return sigma / (mu * (1 - sigma))


@pytest.fixture(scope="module")
def four_single_servers():
    """Four one-worker instances at 80% load under each balancing policy."""
    return {policy: _balanced(4, 1, policy, 320.0, 100.0) for policy in
            ("random", "round_robin", "least_busy", "power_of_two")}


def test_random_balancing_splits_poisson_into_independent_queues(four_single_servers):
    assert_theory(four_single_servers["random"], "stations.x.Wq", mmc(80.0, 100.0, 1).Wq)
    assert_little(four_single_servers["random"])


def test_round_robin_gives_each_instance_erlang_interarrivals(four_single_servers):
    # every 4th Poisson arrival: Erlang-4 gaps, so each instance is E4/M/1
    assert_theory(four_single_servers["round_robin"], "stations.x.Wq", _erlang_k_m1_wait(4, 320.0, 100.0))
    assert_little(four_single_servers["round_robin"])


@pytest.mark.parametrize("policy", ["round_robin", "least_busy", "power_of_two"])
def test_informed_balancing_beats_random(four_single_servers, policy):
    better, random = interval(four_single_servers[policy], "stations.x.Wq"), interval(four_single_servers["random"],
                                                                                       "stations.x.Wq")
    assert better.high < random.low


def test_one_pool_beats_four_instances_of_a_quarter():
    # 4 random instances of 8 workers are 4 independent M/M/8; one pool of 32 is M/M/32
    lam, mu = 272.0, 10.0
    split, pooled = _balanced(4, 8, "random", lam, mu, horizon=60, warmup=5), \
        _balanced(1, 32, "random", lam, mu, horizon=60, warmup=5)
    assert_theory(split, "stations.x.Wq", mmc(lam / 4, mu, 8).Wq)
    assert_theory(pooled, "stations.x.Wq", mmc(lam, mu, 32).Wq)
    assert interval(pooled, "stations.x.Wq").high < interval(split, "stations.x.Wq").low
    assert_theory(split, "stations.x.utilization", lam / mu / 32)


# ---------------------------------------------------------------- queue disciplines

def test_lifo_keeps_the_mean_wait_but_stretches_the_tail():
    # M/M/1 at 80%: any work-conserving order that ignores service times has FIFO's mean wait;
    # FIFO's sojourn is Exp(μ-λ), so its p99 is ln(100)/(μ-λ); LIFO's tail is far longer
    lam, mu = 80.0, 100.0
    model = scenario({"x": {"discipline": "lifo", "service": {"dist": "exponential", "mean": 1 / mu}}},
                     {"a": {"rate": lam}}, horizon=300, warmup=10)
    result = run(model)
    assert_theory(result, "stations.x.Wq", mmc(lam, mu, 1).Wq)
    fifo_p99 = math.log(100) / (mu - lam)
    assert interval(result, "stations.x.latency.p99").low > 1.5 * fifo_p99
    assert_little(result)


def test_non_preemptive_priority_follows_cobham():
    rates, mean = {"urgent": 20.0, "usual": 30.0, "bulk": 30.0}, 0.01
    priorities = {"urgent": "high", "usual": "normal", "bulk": "low"}
    model = scenario({"x": {"discipline": "priority", "service": {"dist": "exponential", "mean": mean}}},
                     {name: {"rate": rate, "priority": priorities[name]} for name, rate in rates.items()},
                     horizon=200, warmup=5)
    result = run(model)
    theory = priority_mg1(list(rates.values()), [mean] * 3, [1.0] * 3)
    for name, metrics in zip(rates, theory):
        assert_theory(result, f"streams.{name}.Wq", metrics.Wq)
    # the classes share one server: the station as a whole is M/M/1 (conservation law)
    assert_theory(result, "stations.x.Wq", mmc(80.0, 1 / mean, 1).Wq)
    assert_little(result)


# ---------------------------------------------------------------- worker schedules

def _scheduled(warmup: float, horizon: float):
    # items every 1/8 s taking 23/64 s: 2.875 busy on average, no finish on an arrival instant;
    # 4 workers, 8 from t = 100, 2 from t = 200 (overloaded: 2 / (23/64) = 128/23 per second)
    model = scenario({"x": {"workers": 4, "service": 23 / 64,
                            "schedule": [{"at": 100, "workers": 8}, {"at": 200, "workers": 2}]}},
                     {"a": {"rate": 8, "process": "deterministic"}}, horizon=horizon, warmup=warmup, replications=1)
    return run(model).rows[0]


@pytest.mark.parametrize("warmup,horizon,workers", [(10, 100, 4), (110, 200, 8)])
def test_schedule_phases_with_enough_workers(warmup, horizon, workers):
    row = _scheduled(warmup, horizon)
    assert row["stations.x.utilization"] == pytest.approx(2.875 / workers, rel=1e-3)
    assert row["stations.x.busy"] == pytest.approx(2.875, rel=1e-3)
    assert row["stations.x.Wq"] == 0
    assert row["stations.x.throughput"] == pytest.approx(8, abs=1 / (horizon - warmup))


def test_schedule_phase_with_too_few_workers():
    row = _scheduled(210, 300)
    assert row["stations.x.utilization"] == pytest.approx(1.0)
    assert row["stations.x.busy"] == pytest.approx(2.0)
    assert row["stations.x.throughput"] == pytest.approx(128 / 23, abs=2 / 90)
    assert row["stations.x.rejected"] == 0


def test_lowering_workers_lets_busy_ones_finish():
    # a task a second taking 10.25 s on 20 workers: 10 or 11 busy; at 50.5 s the workers drop to
    # 5. The 10 in service finish (at 51.25, 52.25, ...) without being replaced until only 5 are
    # busy (55.25); from 56.25 each finishing worker takes the longest-waiting task.
    model = scenario({"x": {"workers": 20, "service": 10.25, "schedule": [{"at": 50.5, "workers": 5}]}},
                     {"a": {"interarrival": 1.0}}, horizon=62, warmup=0, replications=1)
    result = simulate(model, jobs=1, series_interval=SAMPLE)
    busy = [(float(k), k) for k in range(1, 11)]
    busy += [step for k in range(11, 51) for step in ((float(k), 11), (k + 0.25, 10))]
    busy += [(k + 0.25, 10 - (k - 50)) for k in range(51, 56)]
    _check_series(result, "x", "busy", busy)
    # tasks from 51 on queue; from 56.25 to 60.25 the 5 workers each take one as they finish
    # (the next finish is at 66.5)
    queue = [(float(k), k - 50) for k in range(51, 57)]
    queue += [step for k in range(56, 61) for step in ((k + 0.25, 5), (k + 1.0, 6))]
    _check_series(result, "x", "queue", queue)
    row = result.rows[0]
    assert row["stations.x.rejected"] == 0


# ---------------------------------------------------------------- risk classification

def test_classification_shares_follow_the_amount_distribution():
    # p = 1/(1+exp(-(-3 + 0.05 amount))): review above p = 0.5 means amount > 60, decline above
    # p = 0.9 means amount > (3 + logit 0.9)/0.05; amounts are lognormal (median 40, p99 900)
    intercept, coef, review, decline = -3.0, 0.05, 0.5, 0.9
    amount = Lognormal.from_median_p99(40, 900)

    def above(p: float) -> float:
        threshold = (math.log(p / (1 - p)) - intercept) / coef
        return float(stats.norm.sf((math.log(threshold) - amount.mu) / amount.sigma))

    model = scenario({"risk": {"workers": 50, "service": {"dist": "exponential", "mean": 0.01},
                               "classify": {"logistic": {"intercept": intercept, "amount": coef},
                                            "review_above": review, "decline_above": decline},
                               "next": {"approve": "acquirer", "review": "analysts", "decline": "done"}},
                      "acquirer": {"workers": 50, "service": 0.01},
                      "analysts": {"workers": 50, "service": 0.01}},
                     {"card": {"rate": 100, "amount": {"dist": "lognormal", "median": 40, "p99": 900}}},
                     horizon=100, warmup=1)
    result = run(model)
    shares = {"approve": 1 - above(review), "review": above(review) - above(decline), "decline": above(decline)}
    for outcome, share in shares.items():
        assert_theory(result, f"stations.risk.{outcome}_rate", share)
    assert_theory(result, "stations.acquirer.arrival_rate", 100 * shares["approve"])
    assert_theory(result, "stations.analysts.arrival_rate", 100 * shares["review"])
    assert_little(result)


# ---------------------------------------------------------------- parallel calls

@pytest.mark.parametrize("join", ["all", "any"])
def test_parallel_calls_join_all_waits_for_the_max_any_for_the_min(join):
    # after 1 ms at the front, calls to b (Exp mean 0.1 s, failing 10%) and c (Exp mean 0.2 s)
    # at once, on ample workers. join all: a failed b fails the transaction, and a success
    # takes max(X, Y): E = 1/a + 1/b - 1/(a+b). join any: the first success wins, so the
    # transaction never fails; it takes min(X, Y) = Exp(a+b) when b succeeds, Y when b fails.
    a, b, p = 10.0, 5.0, 0.1
    model = scenario({"front": {"workers": 50, "service": 0.001, "parallel": ["b", "c"], "join": join},
                      "b": {"workers": 200, "service": {"dist": "exponential", "mean": 1 / a}, "errors": p},
                      "c": {"workers": 200, "service": {"dist": "exponential", "mean": 1 / b}}},
                     {"pay": {"rate": 100}}, horizon=50, warmup=2)
    result = run(model)
    if join == "all":
        assert_theory(result, "system.W", 0.001 + 1 / a + 1 / b - 1 / (a + b))
        assert_theory(result, "system.error_rate", p)
    else:
        assert_theory(result, "system.W", 0.001 + (1 - p) / (a + b) + p / b)
        assert all(row["system.failure_rate"] == 0 for row in result.rows)
    assert_little(result)


# ---------------------------------------------------------------- closed populations

@pytest.mark.parametrize("clients", [1, 8])
def test_closed_population_matches_exact_mva(clients):
    # N clients think (Exp, mean 0.5 s), then pass through two single-server Exp stations in turn
    demands = {"a": 0.05, "b": 0.08}
    model = scenario({"a": {"service": {"dist": "exponential", "mean": demands["a"]}, "next": "b"},
                      "b": {"service": {"dist": "exponential", "mean": demands["b"]}}},
                     {"users": {"clients": clients, "think": {"dist": "exponential", "mean": 0.5}}},
                     horizon=400, warmup=10)
    result = run(model)
    theory = mva(clients, {"a": 1, "b": 1}, demands, think_time=0.5)
    assert_theory(result, "system.goodput", theory.throughput)
    assert_theory(result, "system.W", theory.response_time)
    assert_theory(result, "stations.b.utilization", theory.stations["b"].utilization)
    assert_little(result)


def test_closed_population_with_deterministic_think_is_exact_when_nobody_queues():
    # 3 clients, think 1 s, service 0.25 s on ample workers: each cycle takes 1.25 s exactly
    model = scenario({"s": {"workers": 3, "service": 0.25}}, {"users": {"clients": 3, "think": 1.0}},
                     horizon=100, warmup=0, replications=1)
    row = run(model).rows[0]
    assert row["system.arrival_rate"] * 100 == 3 * 80          # sends at 1, 2.25, ..., 99.75
    assert row["system.W"] == pytest.approx(0.25)
    assert row["stations.s.busy"] == pytest.approx(3 * 80 * 0.25 / 100)


# ---------------------------------------------------------------- the design page's whole scenario

@pytest.mark.slow
def test_full_language_scenario_runs_end_to_end():
    model = load_scenario(FULL, {"horizon": "90s", "warmup": "15s"})
    result = simulate(model, replications=2, jobs=1)
    summary = result.summary
    rates = [summary[f"stations.risk.{outcome}_rate"].mean for outcome in ("approve", "review", "decline")]
    assert sum(rates) == pytest.approx(1)
    assert rates[0] > 0.99                       # amounts above ~1750 are rare (median 40, p99 900)
    # the acquirer fails 0.5% of its calls; retries turn most of them into successes
    assert_theory(result, "stations.acquirer.error_rate", 0.005)
    assert summary["system.retries"].mean > 0
    assert summary["system.error_rate"].mean < 0.005
    assert summary["streams.refunds.arrival_rate"].mean == pytest.approx(5, rel=0.1)
    for key in ("system.goodput", "system.latency.p99", "system.failure_rate", "stations.gateway.utilization"):
        assert math.isfinite(summary[key].mean), key
