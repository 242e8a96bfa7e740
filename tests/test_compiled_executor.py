"""Executor stations on the compiled engine (paysim/engine/compiled/executor.py) against the
SimPy engine's ThreadPoolExecutor (paysim/engine/executor.py), the JDK model and theory.

- Same sample path: both engines draw from the same per-component generators, so on every
  executor scenario below (each rejection policy, queue 0 / bounded / unbounded, keep_alive 0,
  core 0, outages, a slowdown, client timeouts with cancel, retries, a warm-up, a network)
  every metric agrees to rounding: one hand-off to another thread, one rejection or one
  retired thread more shows at once. So do the hand-computed deterministic pools of
  tests/test_engine_features.py, whose events tie on a 1/16 s grid.
- The JDK model of tests/test_executor_order.py replayed against the compiled engine.
- In distribution: the compiled engine on one seed against the SimPy engine on another,
  headline metrics as two independent samples, Bonferroni across them; each case states
  the relative bias in W it can detect.
- M/M/c/K where the executor is one (core = max = c, queue K − c, abort).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import SEED, assert_holm, engine_differences, scenario
from test_engine_features import ARRIVALS_2S, REJECTIONS
from test_executor_order import CASES as JDK_CASES, JdkPool, _arrivals

from paysim.analytic import mmck
from paysim.distributions import Exponential
from paysim.engine.compiled import unsupported
from paysim.engine.compiled.recursion import fits
from paysim.engine.seeds import component_rng
from paysim.runner import simulate

COMPILED = "fast"
EXP = {"dist": "exponential", "mean": 0.1}


def _pool(executor: dict, **station) -> dict:
    return {"service": EXP, "executor": executor, **station}


SAME_PATH = {   # (stations, stream a): the entry station is the first
    "bounded-abort": ({"x": _pool({"core": 4, "max": 8, "queue": 10, "keep_alive": 0.3})}, {"rate": 60}),
    "keep-alive-zero": ({"x": _pool({"core": 2, "max": 6, "queue": 3, "keep_alive": 0})}, {"rate": 35}),
    "synchronous-caller-runs": ({"x": _pool({"core": 2, "max": 6, "queue": 0, "keep_alive": 0.5,
                                             "rejection": "caller_runs"})}, {"rate": 70}),
    "cached-pool-core-zero": ({"x": _pool({"core": 0, "max": 4, "queue": 0, "keep_alive": 0.2})}, {"rate": 30}),
    "core-zero-unbounded": ({"x": _pool({"core": 0, "max": 3, "keep_alive": 0.4})}, {"rate": 6}),
    "discard-told-at-timeout": ({"x": _pool({"core": 2, "max": 4, "queue": 5, "keep_alive": 1,
                                             "rejection": "discard"})}, {"rate": 45, "timeout": 1.5}),
    "discard-oldest-retried": ({"x": _pool({"core": 2, "max": 4, "queue": 5, "keep_alive": 1,
                                            "rejection": "discard_oldest"})},
                               {"rate": 45, "retry": {"attempts": 3, "backoff": "exponential", "base": 0.05,
                                                      "max": 0.4, "jitter": "full", "on": "rejected"}}),
    "discard-oldest-timeout-retried": ({"x": _pool({"core": 2, "max": 4, "queue": 5, "keep_alive": 1,
                                                    "rejection": "discard_oldest"}, on_timeout="cancel")},
                                       {"rate": 45, "timeout": 0.8,
                                        "retry": {"attempts": 2, "backoff": "constant", "base": 0.1,
                                                  "on": "timeout"}}),
    "outages-and-slowdown": ({"x": _pool({"core": 2, "max": 5, "queue": 8, "keep_alive": 0.5},
                                         on_timeout="cancel",
                                         slowdowns=[{"at": 20, "for": 10, "factor": 2}],
                                         outages=[{"at": 40, "for": 3, "mode": "hang"},
                                                  {"at": 60, "for": 2, "mode": "refuse"}])},
                             {"rate": 30, "timeout": 2}),
    "hang-caller-runs": ({"x": _pool({"core": 1, "max": 2, "queue": 4, "keep_alive": 0.1,
                                      "rejection": "caller_runs"},
                                     outages=[{"at": 30, "for": 4, "mode": "hang"}])}, {"rate": 15}),
    "network-with-errors": ({"api": {"workers": 3, "service": {"dist": "exponential", "mean": 0.02},
                                     "next": {"x": 0.8, "done": 0.2}},
                             "x": _pool({"core": 3, "max": 6, "queue": 4, "keep_alive": 0.3,
                                         "rejection": "caller_runs"}, errors=0.05)}, {"rate": 50}),
}


def _different(reference: dict[str, float], compiled: dict[str, float]) -> dict[str, tuple[float, float]]:
    """The metrics of one replication on which the engines differ beyond rounding."""
    assert set(compiled) == set(reference)
    return {name: (reference[name], compiled[name]) for name in reference
            if not (compiled[name] == pytest.approx(reference[name], rel=1e-9, abs=1e-12)
                    or (math.isnan(reference[name]) and math.isnan(compiled[name])))}


@pytest.mark.parametrize("case", list(SAME_PATH))
def test_same_sample_path_as_the_simpy_engine(case):
    stations, stream = SAME_PATH[case]
    model = scenario(stations, {"a": stream}, horizon=90, warmup=5, replications=1)
    assert unsupported(model) is None and not fits(model)
    reference = simulate(model, jobs=1, engine="simpy").rows[0]
    compiled = simulate(model, jobs=1, engine=COMPILED).rows[0]
    assert reference["stations.x.threads"] > 0
    assert _different(reference, compiled) == {}


def test_the_time_series_samples_the_same_threads_on_both_engines():
    """With a time series (as --out asks), each sample's threads, queue and busy agree too."""
    stations, stream = SAME_PATH["outages-and-slowdown"]
    model = scenario(stations, {"a": stream}, horizon=90, warmup=5, replications=1)
    series = [simulate(model, jobs=1, engine=engine, series_interval=0.997).series[0]
              for engine in ("simpy", COMPILED)]
    assert len(series[0]) == len(series[1]) > 80
    assert len({row["stations.x.threads"] for row in series[0]}) > 2
    for reference, compiled in zip(*series):
        assert _different(reference, compiled) == {}


# the hand-computed deterministic pools of tests/test_engine_features.py: events on a 1/16 s
# grid, so they tie (a task ends as another arrives, a thread's keep_alive ends as a task comes)
DETERMINISTIC = {
    "fills-queue-first": (1.0625, {"core": 2, "max": 4, "queue": 3, "keep_alive": 1.0}, ARRIVALS_2S, 6.0),
    "keep-alive-quarter": (1.0625, {"core": 2, "max": 4, "queue": 3, "keep_alive": 0.25}, ARRIVALS_2S, 6.0),
    "unbounded-never-grows": (1.0625, {"core": 2, "max": 4}, ARRIVALS_2S, 10.0),
    "cached-pool": (0.5, {"core": 0, "max": 2, "queue": 0, "keep_alive": 10},
                    {"rate": 1, "process": "deterministic"}, 20.0),
    "core-zero-retires": (0.5, {"core": 0, "max": 3, "keep_alive": 2}, {"interarrival": 4.0}, 20.0),
    "keep-alive-ends-as-a-task-comes": (0.5, {"core": 0, "max": 3, "keep_alive": 0.5}, {"interarrival": 1.0}, 20.0),
    **{f"{policy}-timeout-{timeout}": (1.0625, {"core": 2, "max": 4, "queue": 3, "keep_alive": 1.0,
                                                "rejection": policy},
                                       {**ARRIVALS_2S, **({"timeout": timeout} if timeout else {})}, 6.0)
       for policy, timeout in REJECTIONS},
}


@pytest.mark.parametrize("case", list(DETERMINISTIC))
def test_deterministic_pools_give_the_same_numbers_on_both_engines(case):
    service, executor, arrival, horizon = DETERMINISTIC[case]
    model = scenario({"x": {"service": service, "executor": executor}}, {"a": arrival},
                     horizon=horizon, warmup=0, replications=1)
    reference = simulate(model, jobs=1, engine="simpy").rows[0]
    compiled = simulate(model, jobs=1, engine=COMPILED).rows[0]
    assert _different(reference, compiled) == {}


def test_every_policy_and_branch_is_exercised():
    """The cases above mean something only if their rare branches happen: drops, discards,
    caller-run tasks and threads above core retiring."""
    def row(case):
        stations, stream = SAME_PATH[case]
        return simulate(scenario(stations, {"a": stream}, horizon=90, warmup=5, replications=1),
                        jobs=1, engine=COMPILED).rows[0]

    assert row("bounded-abort")["stations.x.rejected"] > 0
    assert row("discard-told-at-timeout")["system.timeout_rate"] > 0          # discarded, found out late
    assert row("discard-oldest-retried")["system.retries"] > 0                # dropped, told, retried
    caller = row("synchronous-caller-runs")
    assert caller["stations.x.rejected"] == 0 and caller["stations.x.threads"] < 6
    assert 0 < row("cached-pool-core-zero")["stations.x.threads"] < 4


@pytest.mark.parametrize("core,max_threads,queue,keep_alive,rate,mean", JDK_CASES)
def test_compiled_engine_hands_tasks_over_in_the_jdk_order(core, max_threads, queue, keep_alive, rate, mean):
    """tests/test_executor_order.py's separately written JDK model, on the compiled engine."""
    horizon = 120.0
    executor = {"core": core, "max": max_threads, "keep_alive": keep_alive,
                **({"queue": queue} if queue is not None else {})}
    model = scenario({"x": {"service": {"dist": "exponential", "mean": mean}, "executor": executor}},
                     {"a": {"interarrival": {"dist": "exponential", "mean": 1 / rate}}},
                     horizon=horizon, warmup=0, replications=1, seed=SEED)
    row = simulate(model, jobs=1, engine=COMPILED).rows[0]
    jdk = JdkPool(core, max_threads, queue, keep_alive,
                  Exponential(mean).sampler(component_rng(SEED, 0, "service", "x")), horizon)
    jdk.simulate(_arrivals(rate, horizon))
    assert row["stations.x.rejected"] == jdk.rejected
    assert row["stations.x.throughput"] * horizon == pytest.approx(jdk.done)
    assert row["stations.x.threads"] == pytest.approx(jdk.area_threads / horizon, rel=1e-9)
    assert row["stations.x.Wq"] == pytest.approx(jdk.sum_wait / jdk.started, rel=1e-9, abs=1e-12)


# In distribution. Different seeds make the two engines' runs independent samples: each
# headline metric's replication means must differ by less than z·sqrt(se1² + se2²), z at
# 0.1% two-sided shared across the metrics (Bonferroni). A true relative difference of
# twice that bound over the mean is missed with probability under 1%: the detectable bias,
# asserted on W so the runs stay long enough to mean it. With the fixed seed it is 2.5% on
# the growing pool (threads 3.9%, throughput 1.6%) and 1.6% on the cached pool (threads
# 1.6%, throughput 1.7%); the bounds asserted leave room for another seed's estimate.
HEADLINE = ("stations.x.threads", "stations.x.rejection_rate", "stations.x.W", "stations.x.throughput",
            "system.goodput")
DISTRIBUTION = {   # (executor, stream a, replications, horizon, the bias in W that must be detectable)
    "growing-pool": ({"core": 4, "max": 8, "queue": 10, "keep_alive": 1.0}, {"rate": 45}, 30, 300, 0.035),
    "cached-pool": ({"core": 1, "max": 12, "queue": 0, "keep_alive": 0.5, "rejection": "caller_runs"},
                    {"rate": 60}, 20, 300, 0.025),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(DISTRIBUTION))
def test_compiled_engine_matches_simpy_in_distribution(case):
    executor, stream, replications, horizon, resolution = DISTRIBUTION[case]
    def run(engine, seed):
        model = scenario({"x": {"service": EXP, "executor": executor}}, {"a": stream}, horizon=horizon,
                         warmup=20, replications=replications, seed=seed)
        return simulate(model, jobs=1, engine=engine)

    reference, compiled = run("simpy", SEED), run(COMPILED, SEED + 1)
    names = [n for n in HEADLINE if np.std([row[n] for row in reference.rows]) > 0]
    problems, detectable = engine_differences({name: ([row[name] for row in reference.rows],
                                                      [row[name] for row in compiled.rows]) for name in names},
                                              floor=0.01)
    assert problems == []
    assert detectable["stations.x.W"] <= resolution, f"runs too short to detect a {resolution:.0%} bias: {detectable}"


def test_executor_with_core_equal_to_max_is_mmck():
    """core = max = c threads, queue K − c, abort: an M/M/c/K queue (threads never retire,
    so keep_alive plays no part): W, Wq, throughput, utilisation and the blocking probability
    against the formulas at family-wise level 0.1% (Holm), and exactly c threads alive."""
    c, queue, lam, mean = 3, 4, 27.0, 0.1      # a = 2.7, rho = 0.9 per thread
    model = scenario({"x": {"service": {"dist": "exponential", "mean": mean},
                            "executor": {"core": c, "max": c, "queue": queue, "keep_alive": 0.01}}},
                     {"a": {"rate": lam}}, horizon=1000, warmup=50, replications=10)
    result = simulate(model, jobs=1, engine=COMPILED)
    theory = mmck(lam, 1 / mean, c, c + queue)
    assert_holm(result, {"stations.x.W": (theory.W, 0.0), "stations.x.Wq": (theory.Wq, 0.0),
                         "stations.x.throughput": (theory.throughput, 0.0),
                         "stations.x.utilization": (theory.utilization, 0.0),
                         "stations.x.rejection_rate": (theory.p_block, 0.0)}, alpha=0.001)
    assert all(row["stations.x.threads"] == pytest.approx(c) for row in result.rows)
