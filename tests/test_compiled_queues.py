"""The compiled engine's LIFO and priority queues and its instances behind every balancer,
against the SimPy engine and against theory.

Both engines give every random component (a stream's arrivals, an instance's service
times, a station's errors, routing and balancer) its own generator from the same seed and
draw from it in the same order, so on the same seed they follow the same sample path: with
continuous distributions no two events tie, and every metric must agree to rounding. That
is checked first, on scenarios that exercise each path of the code (withdrawal from the
middle of a priority or LIFO line, the tie rules of least_busy and power_of_two, rejections
at a full instance, instances sharing their station's routing and error draws). Then the
two engines on independent seeds, in distribution (Bonferroni, with the bias each case can
detect stated), and the compiled engine alone against exact results: M/M/1 LIFO has FIFO's
means, non-preemptive priority follows Cobham's formula per class, and a random split of
Poisson traffic over k instances makes k independent M/M/c queues at λ/k.
"""

from __future__ import annotations

import math

import pytest
from conftest import SEED, assert_holm, engine_differences, scenario

from paysim.analytic import mmc, priority_mg1
from paysim.engine.compiled import recursion, unsupported
from paysim.runner import simulate

MU = 100.0
EXP = {"dist": "exponential", "mean": 1 / MU}
POLICIES = ("round_robin", "random", "least_busy", "power_of_two")

SAME_PATH = {   # stations, arrivals
    "lifo-cancel-bounded": ({"x": {"workers": 2, "discipline": "lifo", "queue": 30, "service": EXP,
                                   "on_timeout": "cancel"}},
                            {"a": {"rate": 190, "timeout": 0.08}}),
    "priority-cancel-shared-rank": (   # two streams share the middle priority: FIFO between them
        {"x": {"workers": 2, "discipline": "priority", "service": EXP, "on_timeout": "cancel"}},
        {"urgent": {"rate": 40, "priority": "high"}, "usual": {"rate": 60, "priority": "normal", "timeout": 0.1},
         "also": {"rate": 40, "priority": "normal", "timeout": 0.15}, "bulk": {"rate": 50, "priority": "low",
                                                                               "timeout": 0.3}}),
    "priority-lifo-network": (   # a priority station feeding a LIFO one, with errors and a slowdown
        {"gate": {"discipline": "priority", "service": {"dist": "exponential", "mean": 0.004}, "errors": 0.05,
                  "next": {"core": 0.8, "done": 0.2}},
         "core": {"workers": 2, "discipline": "lifo", "service": EXP,
                  "slowdowns": [{"at": 30, "for": 10, "factor": 1.3}]}},
        {"card": {"rate": 90, "priority": 0}, "batch": {"rate": 100, "priority": 5}}),
    **{f"instances-{policy}": (   # instances feeding instances: shared routing and error draws, rejections
        {"api": {"instances": 3, "balance": policy, "queue": 4, "errors": 0.02, "service": EXP,
                 "next": {"db": 0.7, "done": 0.3}},
         "db": {"instances": 2, "balance": policy, "workers": 2, "service": {"dist": "lognormal", "mean": 0.015,
                                                                               "cv": 1.5},
                "outages": [{"at": 40, "for": 3, "mode": "hang"}], "on_timeout": "cancel"}},
        {"a": {"rate": 240, "timeout": 0.5}}) for policy in POLICIES},
    "instances-priority": ({"x": {"instances": 2, "balance": "power_of_two", "discipline": "priority",
                                  "service": EXP}},
                           {"hi": {"rate": 60, "priority": "high"}, "lo": {"rate": 100, "priority": "low"}}),
    "priority-feeding-executor": (   # a priority line, then a pool whose FIFO queue fills and rejects
        {"gate": {"discipline": "priority", "service": {"dist": "exponential", "mean": 0.005}, "next": "pool",
                  "on_timeout": "cancel"},
         "pool": {"service": EXP, "executor": {"core": 1, "max": 3, "queue": 4, "keep_alive": 0.05,
                                               "rejection": "discard_oldest"}, "on_timeout": "cancel"}},
        {"card": {"rate": 80, "priority": 0, "timeout": 0.2}, "batch": {"rate": 90, "priority": 5,
                                                                         "timeout": 0.3}}),
}


def _differences(reference: dict[str, float], compiled: dict[str, float]) -> list[str]:
    return [f"{name}: simpy {reference[name]!r} vs compiled {compiled[name]!r}" for name in reference
            if reference[name] != pytest.approx(compiled[name], rel=1e-9, abs=1e-12, nan_ok=True)]


@pytest.mark.parametrize("case", list(SAME_PATH))
def test_same_seed_same_sample_path_as_simpy(case):
    stations, arrivals = SAME_PATH[case]
    model = scenario(stations, arrivals, horizon=60, warmup=5, replications=1)
    assert unsupported(model) is None and not recursion.fits(model)
    reference = simulate(model, jobs=1, engine="simpy").rows[0]
    compiled = simulate(model, jobs=1, engine="fast")
    assert compiled.engine == "fast"
    assert set(compiled.rows[0]) == set(reference)
    assert _differences(reference, compiled.rows[0]) == []
    # the feature is exercised: work waited (and under a deadline some left the line)
    assert max(v for k, v in reference.items() if k.endswith(".Lq")) > 0.5


DETERMINISTIC = {   # no randomness at all (bar the balancer's draws, the same on both engines)
    "lifo-overloaded": ({"x": {"discipline": "lifo", "service": 0.1501}}, {"a": {"rate": 8}}),
    "priority-overloaded": ({"x": {"discipline": "priority", "service": 0.1501, "on_timeout": "cancel"}},
                            {"hi": {"rate": 4, "priority": "high"},
                             "lo": {"rate": 3.3, "priority": "low", "timeout": 2.03}}),
    **{f"instances-{policy}": ({"x": {"instances": 3, "balance": policy, "queue": 2, "service": 0.3301,
                                      "slowdowns": [{"at": 20.05, "for": 10, "factor": 2}]}},
                               {"a": {"rate": 8.5}}) for policy in POLICIES},
}


@pytest.mark.parametrize("case", list(DETERMINISTIC))
def test_deterministic_scenarios_give_the_same_numbers_on_both_engines(case):
    stations, arrivals = DETERMINISTIC[case]
    arrivals = {name: {"process": "deterministic", **spec} for name, spec in arrivals.items()}
    model = scenario(stations, arrivals, horizon=80, warmup=5, replications=1)
    reference = simulate(model, jobs=1, engine="simpy").rows[0]
    compiled = simulate(model, jobs=1, engine="fast").rows[0]
    assert _differences(reference, compiled) == []
    assert reference["stations.x.Lq"] > 0.1    # a line formed: its order mattered


def test_round_robin_visits_the_instances_in_turn():
    """One transaction every second, each served in 2.5 s by one of three instances in turn:
    each instance gets one every 3 s, so nobody ever waits; any other order makes some wait."""
    model = scenario({"x": {"instances": 3, "balance": "round_robin", "service": 2.5}},
                     {"a": {"rate": 1, "process": "deterministic"}}, horizon=100, warmup=0, replications=1)
    row = simulate(model, jobs=1, engine="fast").rows[0]
    assert row["stations.x.Wq"] == 0.0
    assert row["stations.x.utilization"] == pytest.approx(2.5 / 3, rel=0.05)   # 2.5 s of every 3 s, bar the edges


# ---------------------------------------------------------------- against theory (compiled engine only)

@pytest.mark.slow
def test_lifo_mm1_has_fifo_means():
    """M/M/1 at ρ = 0.7: any order that ignores service times and never idles a worker with
    work waiting leaves the number in system, hence L, W and Wq, as under FIFO. 10
    replications of 3000 s (about 2M transactions); Holm over the three means at 0.1%.
    Detectable (twice the corrected bound over the mean, fixed seed): 3.0% on W and L, 4.1%
    on Wq. The order itself is checked against SimPy above: FIFO would pass this."""
    lam = 70.0
    model = scenario({"x": {"discipline": "lifo", "service": EXP}}, {"a": {"rate": lam}},
                     horizon=3000, warmup=30, replications=10)
    result = simulate(model, jobs=1, engine="fast")
    theory = mmc(lam, MU, 1)
    assert_holm(result, {"stations.x.W": (theory.W, 0.0), "stations.x.Wq": (theory.Wq, 0.0),
                         "stations.x.L": (theory.L, 0.0)}, alpha=0.001)


@pytest.mark.slow
@pytest.mark.parametrize("service,scv", [(EXP, 1.0), (1 / MU, 0.0)], ids=["M-M-1", "M-D-1"])
def test_priority_classes_wait_as_cobham_says(service, scv):
    """Three priority classes at loads 0.2, 0.3 and 0.3 on one worker: each class's mean wait
    (the stream's Wq) from Cobham's M/G/1 formula, exponential and deterministic service;
    the station as a whole waits as FIFO (Pollaczek–Khinchine). Holm over the four at 0.1%.
    Detectable with the fixed seed: 1.9%, 3.8% and 5.6% on the classes' waits (M/M/1; 1.3%,
    2.6%, 5.6% M/D/1), 4-5% on the station's: a class served out of turn moves them by far more."""
    rates = {"urgent": 20.0, "usual": 30.0, "bulk": 30.0}
    priorities = {"urgent": "high", "usual": "normal", "bulk": "low"}
    model = scenario({"x": {"discipline": "priority", "service": service}},
                     {name: {"rate": rate, "priority": priorities[name]} for name, rate in rates.items()},
                     horizon=2000, warmup=20, replications=10)
    result = simulate(model, jobs=1, engine="fast")
    classes = priority_mg1(list(rates.values()), [1 / MU] * 3, [scv] * 3)
    whole = priority_mg1([sum(rates.values())], [1 / MU], [scv])[0]
    expected = {f"streams.{name}.Wq": (metrics.Wq, 0.0) for name, metrics in zip(rates, classes)}
    expected["stations.x.Wq"] = (whole.Wq, 0.0)
    assert_holm(result, expected, alpha=0.001)


@pytest.mark.slow
def test_random_balancing_makes_independent_queues():
    """A random split of Poisson traffic is Poisson: 4 instances of 2 workers at λ/4 each are
    4 independent M/M/2 queues, so the station's Wq, W and utilisation are one M/M/2's.
    Holm over the three at 0.1%. Detectable with the fixed seed: 3.5% on Wq, 2.0% on W,
    0.35% on utilisation."""
    lam, instances = 600.0, 4
    model = scenario({"x": {"instances": instances, "workers": 2, "balance": "random", "service": EXP}},
                     {"a": {"rate": lam}}, horizon=600, warmup=10, replications=10)
    result = simulate(model, jobs=1, engine="fast")
    one = mmc(lam / instances, MU, 2)
    assert_holm(result, {"stations.x.Wq": (one.Wq, 0.0), "stations.x.W": (one.W, 0.0),
                         "stations.x.utilization": (one.utilization, 0.0)}, alpha=0.001)


# ---------------------------------------------------------------- against SimPy in distribution

HEADLINE = ("system.W", "system.goodput", "system.failure_rate", "stations.x.utilization", "stations.x.Wq")
IN_DISTRIBUTION = {   # case: (stations, arrivals, horizon of each of 12 replications)
    "priority-deadlines": ({"x": {"workers": 2, "discipline": "priority", "service": EXP, "on_timeout": "cancel"}},
                           {"hi": {"rate": 40, "priority": "high"},
                            "lo": {"rate": 80, "priority": "low", "timeout": 0.08}}, 300),
    "power-of-two-bounded": ({"x": {"instances": 4, "balance": "power_of_two", "queue": 3, "service": EXP}},
                             {"a": {"rate": 330}}, 200),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(IN_DISTRIBUTION))
def test_compiled_engine_matches_simpy_in_distribution(case):
    """The engines on independent seeds: each headline metric's replication means differ by
    less than z·sqrt(se1² + se2²), z at 0.1% shared across the metrics (Bonferroni). The
    detectable bias is twice that bound over the mean; 12 replications make it at most 3% on W
    (asserted, so the runs stay long enough to mean it; 2.3% and 2.7% with the fixed seed)."""
    stations, arrivals, horizon = IN_DISTRIBUTION[case]
    reference = simulate(scenario(stations, arrivals, horizon=horizon, warmup=5, replications=12, seed=SEED),
                         jobs=1, engine="simpy")
    compiled = simulate(scenario(stations, arrivals, horizon=horizon, warmup=5, replications=12, seed=SEED + 1),
                        jobs=1, engine="fast")
    samples = {name: ([row[name] for row in reference.rows], [row[name] for row in compiled.rows])
               for name in HEADLINE if math.isfinite(reference.summary[name].mean)}
    problems, detectable = engine_differences(samples)
    assert problems == []
    assert detectable["system.W"] <= 0.03, f"runs too short to detect a 3% bias in W: {detectable['system.W']:.1%}"


def test_instances_beside_a_feature_without_per_instance_tables_stay_on_simpy():
    """A table of one row per station would be read at the wrong row past a station of
    several instances: until such a feature's tables are per instance, the scenario is refused."""
    from paysim.engine.compiled import balance

    model = scenario({"a": {"instances": 2, "service": EXP, "next": "b"},
                      "b": {"service": EXP, "schedule": [{"at": 10, "workers": 2}]}},
                     {"s": {"rate": 10}}, horizon=20, warmup=0, replications=1)
    why = balance.unsupported("a", model.stations["a"], model)
    assert why == "stations.a.instances with stations.b.schedule needs the SimPy engine"
    assert unsupported(model) is not None


@pytest.mark.parametrize("station,rejection", [({"instances": 2, "balance": "least_busy"}, "caller_runs"),
                                               ({"discipline": "priority"}, "discard_oldest")])
def test_an_executor_the_compiled_engine_cannot_follow_stays_on_simpy(station, rejection):
    """Balancing by load over pools whose tasks run on their callers' threads (SimPy leaves those
    out of an instance's load), or discard_oldest across priorities: refused, ``auto`` runs SimPy."""
    model = scenario({"x": {"service": EXP, "executor": {"core": 1, "max": 2, "queue": 2, "rejection": rejection},
                            **station}}, {"s": {"rate": 10}}, horizon=20, warmup=0, replications=1)
    assert unsupported(model) is not None
    assert simulate(model, jobs=1, engine="auto").engine == "simpy"


def test_time_series_sums_a_stations_instances_as_simpy_does():
    """The series samples each station's queue and busy workers: over its instances, summed
    (one observer per station), the same samples as the SimPy engine's on the same seed."""
    from paysim.runner import replicate_with_series

    stations, arrivals = SAME_PATH["instances-power_of_two"]
    model = scenario(stations, arrivals, horizon=30, warmup=0, replications=1)
    reference = replicate_with_series(model, model.seed, 0, interval_s=1.0, engine="simpy")[1]
    compiled = replicate_with_series(model, model.seed, 0, interval_s=1.0, engine="fast")[1]
    assert len(compiled) == len(reference) == 30
    assert [_differences(r, c) for r, c in zip(reference, compiled)] == [[]] * 30
    assert max(row["stations.api.busy"] for row in compiled) > 1   # several instances busy at once
