"""paysim.theory (which formula fits each station, or why none does) and paysim.compare."""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import interval, run, scenario
from rich.console import Console

from paysim import analytic
from paysim.compare import compare, comparison_table, comparisons_to_json
from paysim.errors import ScenarioError
from paysim.preflight import expected_arrivals, stability_warnings, station_loads
from paysim.scenario import load_scenario, scenario_from_data
from paysim.sketch import RELATIVE_ERROR
from paysim.stats import Estimate
from paysim.theory import ScopeTheory, Theory, analyse, theory_to_dict

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
EXP = {"dist": "exponential", "mean": 0.1}
LOGNORMAL = {"dist": "lognormal", "mean": 0.1, "cv": 1.5}


def _model(stations, arrivals, horizon=100.0, warmup=10.0, replications=10, seed=20261125):
    return scenario(stations, arrivals, horizon, warmup, replications, seed)


def _feedback_tandem():
    """a (2 workers) -> b (1 worker) -> a with 0.25, else done: λ = 12/0.75 = 16/s at both."""
    stations = {"a": {"workers": 2, "service": {"dist": "exponential", "mean": 0.1}, "next": "b"},
                "b": {"service": {"dist": "exponential", "mean": 0.05}, "next": {"a": 0.25, "done": 0.75}}}
    return _model(stations, {"pay": {"rate": 12, "enter": "a"}})


def test_jackson_network_with_feedback_matches_product_form() -> None:
    theory = analyse(_feedback_tandem())
    nodes, total = analytic.jackson_network(
        {"a": 12.0}, {"a": {"b": 1.0}, "b": {"a": 0.25}}, {"a": 10.0, "b": 20.0}, {"a": 2, "b": 1})
    for name, node in nodes.items():
        station = theory.stations[name]
        assert station.exact and station.formula == "M/M/c (Erlang C)"
        for metric in ("arrival_rate", "utilization", "L", "Lq", "W", "Wq", "p_wait"):
            assert station.metrics[metric] == pytest.approx(getattr(node, metric), rel=1e-3)
        rate, mu, c = node.arrival_rate, {"a": 10.0, "b": 20.0}[name], {"a": 2, "b": 1}[name]
        assert station.metrics["latency.p99"] == pytest.approx(analytic.mmc_sojourn_quantile(0.99, rate, mu, c))
    assert theory.system.exact and theory.system.formula == "open Jackson network"
    for metric in ("L", "Lq", "W", "Wq", "throughput"):
        assert theory.system.metrics[metric] == pytest.approx(getattr(total, metric), rel=1e-3)
    assert "latency.p99" not in theory.system.metrics  # end-to-end percentiles have no formula here


def test_mmc_example_is_erlang_c() -> None:
    theory = analyse(load_scenario(SCENARIOS / "mmc.yaml"))
    pool, flat = theory.stations["pool"], theory.flat()
    c_wait = analytic.erlang_c(10, 8.0)
    assert pool.exact and pool.metrics["p_wait"] == pytest.approx(c_wait)
    assert flat["stations.pool.Wq"] == pytest.approx(c_wait / (500 - 400))  # 4.09 ms
    assert flat["stations.pool.W"] == pytest.approx(c_wait / 100 + 0.02)
    assert flat["system.W"] == pytest.approx(flat["stations.pool.W"])  # one station, visited once
    assert flat["system.latency.p999"] == flat["stations.pool.latency.p999"]
    assert flat["stations.pool.wait.p99"] == pytest.approx(analytic.mmc_wait_quantile(0.99, 400, 50, 10))


def test_mmck_example_is_mmck() -> None:
    theory = analyse(load_scenario(SCENARIOS / "mmck.yaml"))
    exact = analytic.mmck(220.0, 25.0, 8, 20)
    pool = theory.stations["pool"]
    assert pool.exact and pool.formula == "M/M/c/K"
    for metric, field in [("rejection_rate", "p_block"), ("throughput", "throughput"), ("L", "L"),
                          ("Lq", "Lq"), ("W", "W"), ("Wq", "Wq"), ("utilization", "utilization")]:
        assert pool.metrics[metric] == pytest.approx(getattr(exact, field))
    assert theory.system.metrics["failure_rate"] == pytest.approx(exact.p_block)


def test_profiled_stream_has_no_steady_state() -> None:
    model = _model({"pool": {"workers": 2, "service": EXP}},
                   {"flash": {"rate": 5, "profile": [{"at": 0, "x": 1.0}, {"at": 50, "x": 3.0}]}})
    theory = analyse(model)
    assert not theory.stations["pool"].ok and "profile of stream 'flash'" in theory.stations["pool"].reason
    assert "no result" in theory.system.reason and theory.flat() == {}


def test_unstable_station_and_everything_downstream_are_refused() -> None:
    model = _model({"slow": {"service": {"dist": "exponential", "mean": 0.2}, "next": "after"},
                    "after": {"workers": 4, "service": EXP}}, {"pay": {"rate": 6}})
    theory = analyse(model)
    assert "unstable" in theory.stations["slow"].reason
    assert "downstream of station 'slow'" in theory.stations["after"].reason
    assert not theory.system.ok


def test_lognormal_multi_server_is_approximate() -> None:
    theory = analyse(_model({"pool": {"workers": 4, "service": LOGNORMAL}}, {"pay": {"rate": 30}}))
    pool = theory.stations["pool"]
    assert pool.ok and not pool.exact and "Allen-Cunneen approximation" in pool.formula
    expected = analytic.allen_cunneen(30.0, 0.1, 4, 1.0, 1.5**2)
    assert pool.metrics["Wq"] == pytest.approx(expected.Wq)
    assert "latency.p99" not in pool.metrics
    assert "approximated" in theory.system.reason


def test_poisson_input_downstream_of_markov_stations_is_exact() -> None:
    # Burke: the M/M/2's output is Poisson, so the lognormal single server after it is an exact M/G/1.
    model = _model({"front": {"workers": 2, "service": EXP, "next": "back"},
                    "back": {"service": LOGNORMAL}}, {"pay": {"rate": 5}})
    theory = analyse(model)
    back = theory.stations["back"]
    assert back.exact and back.metrics["Wq"] == pytest.approx(analytic.mg1(5.0, 0.1, 1.5**2).Wq)
    front = theory.stations["front"].metrics
    assert theory.system.exact and theory.system.metrics["W"] == pytest.approx(front["W"] + back.metrics["W"])


def test_cycles_and_renewal_streams_are_approximate() -> None:
    loop = analyse(_model({"retry": {"service": LOGNORMAL, "next": {"retry": 0.2, "done": 0.8}}}, {"pay": {"rate": 4}}))
    assert not loop.stations["retry"].exact and "taken as Poisson" in loop.stations["retry"].formula
    clock = analyse(_model({"pool": {"workers": 3, "service": EXP}}, {"tick": {"rate": 20, "process": "deterministic"}}))
    assert "ca²=0" in clock.stations["pool"].formula
    expected = analytic.allen_cunneen(20.0, 0.1, 3, 0.0, 1.0)
    assert clock.stations["pool"].metrics["Wq"] == pytest.approx(expected.Wq)


def test_losses_thin_the_flow_downstream() -> None:
    model = _model({"gate": {"workers": 1, "queue": 2, "service": EXP, "next": "core"},
                    "core": {"workers": 2, "service": EXP}}, {"pay": {"rate": 9}})
    theory = analyse(model)
    gate = analytic.mmck(9.0, 10.0, 1, 3)
    assert theory.stations["gate"].metrics["rejection_rate"] == pytest.approx(gate.p_block)
    core = theory.stations["core"]
    assert core.metrics["arrival_rate"] == pytest.approx(gate.throughput)
    assert not core.exact  # the output of a lossy queue is not Poisson
    assert "station 'core' is only approximated" in theory.system.reason


def test_bounded_queue_without_poisson_input_is_refused() -> None:
    model = _model({"gate": {"workers": 2, "queue": 5, "service": LOGNORMAL, "next": "core"},
                    "core": {"workers": 2, "service": EXP}}, {"pay": {"rate": 9}})
    theory = analyse(model)
    assert "non-exponential service" in theory.stations["gate"].reason
    assert "downstream of station 'gate', whose losses are not modelled" in theory.stations["core"].reason


def test_theory_to_dict_is_json() -> None:
    theory = analyse(_feedback_tandem())
    data = json.loads(json.dumps(theory_to_dict(theory), allow_nan=False))
    assert data["stations"]["a"]["latency"]["p99"] == pytest.approx(theory.flat()["stations.a.latency.p99"])
    assert data["stations"]["b"]["exact"] is True and data["system"]["formula"] == "open Jackson network"
    assert data["streams"]["pay"]["W"] == pytest.approx(data["system"]["W"])  # the only stream
    refused = theory_to_dict(analyse(_model({"pool": {"service": EXP}}, {"pay": {"rate": 20}})))
    assert set(refused["stations"]["pool"]) == {"reason"}


def test_compare_widens_percentile_intervals_by_the_sketch_error() -> None:
    summary = {"stations.pool.W": Estimate(1.0, 0.99, 1.0, 10),
               "stations.pool.latency.p99": Estimate(1.0, 0.99, 1.0, 10),
               "stations.pool.Wq": Estimate(0.5, math.nan, math.nan, 1)}
    assert RELATIVE_ERROR >= 0.004  # so 1.004 is within the widened percentile interval
    pool = ScopeTheory("M/M/c (Erlang C)", True, {"W": 1.004, "latency.p99": 1.004, "Wq": 0.4, "p_wait": 0.3})
    theory = Theory("fake", ScopeTheory(reason="not asked"), {"pool": pool})
    rows = {row.metric: row for row in compare(SimpleNamespace(summary=summary), theory)}
    assert set(rows) == {"W", "latency.p99", "Wq"}  # p_wait is not measured by a run
    assert rows["W"].inside_ci is False and rows["latency.p99"].inside_ci is True
    assert rows["Wq"].inside_ci is None and rows["Wq"].rel_diff == pytest.approx(0.25)


def test_compare_short_mm2_run_against_erlang_c() -> None:
    model = _model({"pool": {"workers": 2, "service": EXP}}, {"pay": {"rate": 10}}, horizon=200.0, warmup=20.0)
    result = run(model)
    theory = analyse(model)
    rows = {row.name: row for row in compare(result, theory)}
    exact = analytic.mmc(10.0, 10.0, 2)
    for scope in ("stations.pool", "system"):
        for metric in ("W", "Wq", "L"):
            row = rows[f"{scope}.{metric}"]
            assert row.exact and row.theory == pytest.approx(getattr(exact, metric))
            assert row.simulated == result.summary[row.name]
            assert row.inside_ci, f"{row.name}: theory {row.theory:.5g} outside {row.simulated}"
            # independently of compare: the 99.9% interval over the replications holds theory
            ci = interval(result, row.name)
            assert ci.low <= getattr(exact, metric) <= ci.high
    console = Console(record=True, width=200)
    console.print(comparison_table(list(rows.values())))
    text = console.export_text()
    assert "stations.pool" in text and "inside" in text
    data = json.loads(json.dumps(comparisons_to_json(list(rows.values())), allow_nan=False))
    assert {d["name"] for d in data} == set(rows)


def test_losses_at_the_end_leave_the_system_without_a_formula() -> None:
    # Both stations are exact (the bounded one has Poisson input by Burke), but end-to-end
    # means over completed transactions are not a sum of station means once some are lost.
    model = _model({"front": {"workers": 2, "service": EXP, "next": "gate"},
                    "gate": {"queue": 1, "service": EXP}}, {"pay": {"rate": 8}})
    theory = analyse(model)
    assert theory.stations["front"].exact and theory.stations["gate"].exact
    assert theory.stations["gate"].metrics["rejection_rate"] == pytest.approx(analytic.mmck(8.0, 10.0, 1, 2).p_block)
    assert "loses transactions" in theory.system.reason


def test_errors_thin_the_flow_but_keep_product_form() -> None:
    # An error is a Bernoulli exit after service: the network stays a Jackson network.
    model = _model({"a": {"workers": 2, "service": EXP, "errors": 0.2, "next": "b"},
                    "b": {"workers": 2, "service": EXP}}, {"pay": {"rate": 10}})
    theory = analyse(model)
    a, b = theory.stations["a"], theory.stations["b"]
    assert a.exact and a.metrics["arrival_rate"] == pytest.approx(10.0)
    assert a.metrics["error_rate"] == 0.2 and a.metrics["goodput"] == pytest.approx(8.0)
    assert b.exact and b.metrics["Wq"] == pytest.approx(analytic.mmc(8.0, 10.0, 2).Wq)
    assert "loses transactions" in theory.system.reason
    single = analyse(_model({"pool": {"workers": 2, "service": EXP, "errors": 0.1}}, {"pay": {"rate": 10}}))
    assert single.system.metrics["failure_rate"] == pytest.approx(0.1)
    assert single.system.metrics["throughput"] == pytest.approx(9.0)
    assert single.system.metrics["W"] == single.stations["pool"].metrics["W"]


def test_retries_timeouts_and_time_varying_capacity_are_refused() -> None:
    retrying = analyse(_model({"pool": {"workers": 2, "service": EXP, "errors": 0.1}},
                              {"pay": {"rate": 10, "retry": {"attempts": 3, "on": ["error"]}}}))
    assert "retries failed attempts" in retrying.stations["pool"].reason
    never_fires = analyse(_model({"pool": {"workers": 2, "service": EXP}},
                                 {"pay": {"rate": 10, "retry": {"attempts": 3, "on": ["error"]}}}))
    assert never_fires.stations["pool"].exact and never_fires.system.ok
    timing_out = analyse(_model({"pool": {"workers": 2, "service": EXP}}, {"pay": {"rate": 10, "timeout": 0.5}}))
    assert timing_out.stations["pool"].exact  # the work is still done: the station does not notice
    assert "time out" in timing_out.system.reason
    cancelling = analyse(_model({"pool": {"workers": 2, "service": EXP, "on_timeout": "cancel", "next": "after"},
                                 "after": {"service": EXP}}, {"pay": {"rate": 10, "timeout": 0.5}}))
    assert "on_timeout: cancel" in cancelling.stations["pool"].reason
    assert "losses are not modelled" in cancelling.stations["after"].reason
    slowed = analyse(_model({"pool": {"workers": 2, "service": EXP, "next": "after",
                                      "slowdowns": [{"at": 20, "for": 10, "factor": 3}]},
                             "after": {"service": EXP}}, {"pay": {"rate": 10}}))
    assert "slowdowns or outages" in slowed.stations["pool"].reason
    assert "downstream of station 'pool'" in slowed.stations["after"].reason


# ---------------------------------------------------------------- never crash, always say why


def _check_theory(model) -> None:
    """analyse() answers every scope with finite metrics or a reason, and its dict is JSON."""
    theory = analyse(model)
    assert set(theory.stations) == set(model.stations) and set(theory.streams) == set(model.arrivals)
    for scope, part in theory.scopes().items():
        if not part.ok:
            assert isinstance(part.reason, str) and part.reason, scope
            continue
        assert part.formula and part.metrics, scope
        assert all(math.isfinite(v) for v in part.metrics.values()), (scope, part.metrics)
        m = part.metrics
        if scope != "system" and {"L", "W", "throughput"} <= set(m) and "rejection_rate" not in m:
            continue  # a stream: L counts attempts, throughput only the finished ones
        if {"L", "W", "arrival_rate", "rejection_rate"} <= set(m):  # Little over accepted arrivals
            assert m["L"] == pytest.approx(m["arrival_rate"] * (1 - m["rejection_rate"]) * m["W"], rel=1e-9), scope
    json.dumps(theory_to_dict(theory), allow_nan=False)
    station_loads(model), stability_warnings(model), expected_arrivals(model)


def _example_files() -> list[Path]:
    return [f for f in sorted(SCENARIOS.glob("*.yaml"))
            if not re.search(r"^sweep:", f.read_text(encoding="utf-8"), re.MULTILINE)]


@pytest.mark.parametrize("path", _example_files(), ids=lambda p: p.name)
def test_every_example_scenario_goes_through_theory(path: Path) -> None:
    _check_theory(load_scenario(path))


def test_the_full_language_example_goes_through_theory() -> None:
    model = load_scenario(Path(__file__).resolve().parent / "data" / "full-language.yaml")
    _check_theory(model)
    theory = analyse(model)
    assert "profile of stream 'card'" in theory.stations["risk"].reason
    assert "risk classification at station 'risk'" in theory.stations["analysts"].reason
    assert "batch station" in theory.stations["settlement"].reason
    steady = load_scenario(Path(__file__).resolve().parent / "data" / "full-language.yaml", {"arrivals.card.profile": [{"at": 0, "x": 1.0}]})
    _check_theory(steady)


def _random_station(rng: random.Random, name: str, later: list[str]) -> dict:
    service = rng.choice([{"dist": "exponential", "mean": rng.choice([0.01, 0.05, 0.2])}, 0.02,
                          {"dist": "lognormal", "mean": 0.03, "cv": 1.5}, {"dist": "gamma", "mean": 0.04, "cv": 0.5}])
    station: dict = {"service": service}
    kind = rng.choice(["plain", "plain", "executor", "batch", "classify", "parallel", "schedule"])
    if kind == "executor":
        core = rng.choice([0, 1, 3])
        station["executor"] = {"core": core, "max": core + rng.choice([0, 0, 2]) or 1,
                               **({"queue": rng.choice([0, 5])} if rng.random() < 0.5 else {}),
                               "rejection": rng.choice(["abort", "caller_runs", "discard", "discard_oldest"])}
    else:
        station["workers"] = rng.choice([1, 2, 8])
        if rng.random() < 0.3:
            station["queue"] = rng.choice([0, 3, 50])
    if kind == "batch":
        station["batch"] = rng.choice([{"size": 10}, {"every": 1.0}, {"size": 5, "every": 0.5}])
        station["service"] = {"per_batch": 0.05, "per_item": 0.001}
    if kind == "schedule":
        station["schedule"] = [{"at": rng.choice([0, 10]), "workers": rng.choice([1, 2, 8])}]
    if rng.random() < 0.3:
        station["instances"] = rng.choice([2, 3])
        station["balance"] = rng.choice(["round_robin", "random", "least_busy", "power_of_two"])
    station["discipline"] = rng.choice(["fifo", "fifo", "lifo", "priority"])
    if rng.random() < 0.2:
        station["errors"] = 0.01
    targets = [*later, "done"]
    if kind == "classify":
        station["classify"] = {"logistic": {"intercept": -3.0, "amount": 0.01}, "review_above": 0.3, "decline_above": 0.9}
        station["next"] = {outcome: rng.choice(targets) for outcome in rng.sample(["approve", "review", "decline"], 2)}
        return station
    if kind == "parallel" and later:
        station["parallel"] = rng.sample(later, min(len(later), 2))
        station["join"] = rng.choice(["all", "any"])
    if later and rng.random() < 0.6:
        station["next"] = rng.choice(later)
    elif rng.random() < 0.4:
        back = rng.choice([name, *later])
        station["next"] = {back: 0.2, "done": 0.8}
    return station


def _random_arrival(rng: random.Random, stations: list[str]) -> dict:
    arrival: dict = {"enter": rng.choice(stations), "priority": rng.choice(["high", "normal", "low"])}
    kind = rng.choice(["poisson", "poisson", "deterministic", "interarrival", "closed"])
    if kind == "closed":
        arrival.update(clients=rng.choice([1, 5, 40]), think=rng.choice([0.5, {"dist": "exponential", "mean": 1.0}]))
        arrival.pop("priority")
    elif kind == "interarrival":
        arrival["interarrival"] = {"dist": "gamma", "mean": rng.choice([0.02, 0.1]), "cv": 0.5}
    else:
        arrival.update(rate=rng.choice([5, 20, 100]), process=kind)
    if rng.random() < 0.3:
        arrival["amount"] = {"dist": "lognormal", "median": 100, "p99": 2000}
    if rng.random() < 0.1:
        arrival["timeout"] = 1.0
    return arrival


def test_random_feature_combinations_never_crash_theory() -> None:
    rng, analysed = random.Random(20261125), 0
    for case in range(400):
        names = [f"s{i}" for i in range(rng.randint(1, 4))]
        stations = {n: _random_station(rng, n, names[i + 1:]) for i, n in enumerate(names)}
        arrivals = {f"a{j}": _random_arrival(rng, names) for j in range(rng.randint(1, 3))}
        try:
            model = scenario_from_data({"horizon": 100, "arrivals": arrivals, "stations": stations}, f"case{case}.yaml")
        except ScenarioError:
            continue
        _check_theory(model)
        analysed += 1
    assert analysed >= 200


# ---------------------------------------------------------------- what a station is made of


def test_an_executor_that_cannot_grow_is_a_fixed_pool() -> None:
    fixed = analyse(_model({"pool": {"executor": {"core": 3, "max": 3}, "service": EXP}}, {"pay": {"rate": 24}}))
    pool, exact = fixed.stations["pool"], analytic.mmc(24.0, 10.0, 3)
    assert pool.exact and pool.metrics["Wq"] == pytest.approx(exact.Wq) and pool.metrics["threads"] == 3
    assert pool.metrics["latency.p99"] == pytest.approx(analytic.mmc_sojourn_quantile(0.99, 24.0, 10.0, 3))
    # an unbounded queue never lets the pool grow past core: M/M/3, utilisation over max threads as a run has it
    lazy = analyse(_model({"pool": {"executor": {"core": 3, "max": 8}, "service": EXP}}, {"pay": {"rate": 24}}))
    assert lazy.stations["pool"].metrics["Wq"] == pytest.approx(exact.Wq)
    assert lazy.stations["pool"].metrics["utilization"] == pytest.approx(2.4 / 8)
    cached = analyse(_model({"pool": {"executor": {"core": 0, "max": 4}, "service": EXP}}, {"pay": {"rate": 5}}))
    assert cached.stations["pool"].metrics["Wq"] == pytest.approx(analytic.mmc(5.0, 10.0, 1).Wq)  # one thread
    bounded = analyse(_model({"pool": {"executor": {"core": 2, "max": 2, "queue": 3, "rejection": "discard"},
                                       "service": EXP}}, {"pay": {"rate": 22}}))
    exact = analytic.mmck(22.0, 10.0, 2, 5)
    assert bounded.stations["pool"].metrics["rejection_rate"] == pytest.approx(exact.p_block)
    growing = analyse(_model({"pool": {"executor": {"core": 2, "max": 6, "queue": 3}, "service": EXP, "next": "db"},
                              "db": {"service": EXP}}, {"pay": {"rate": 22}}))
    assert "depends on the state" in growing.stations["pool"].reason
    assert "downstream of station 'pool'" in growing.stations["db"].reason
    for policy in ("caller_runs", "discard_oldest"):
        odd = analyse(_model({"pool": {"executor": {"core": 2, "max": 2, "queue": 3, "rejection": policy},
                                       "service": EXP}}, {"pay": {"rate": 22}}))
        assert policy in odd.stations["pool"].reason


def test_random_instances_are_independent_stations_and_other_balancers_upper_estimates() -> None:
    def pool(balance: str) -> ScopeTheory:
        return analyse(_model({"pool": {"workers": 2, "instances": 3, "balance": balance, "service": EXP}},
                              {"pay": {"rate": 45}})).stations["pool"]

    one = analytic.mmc(15.0, 10.0, 2)
    split = pool("random")
    assert split.exact and "random split" in split.formula
    assert split.metrics["L"] == pytest.approx(3 * one.L) and split.metrics["W"] == pytest.approx(one.W)
    assert split.metrics["utilization"] == pytest.approx(one.utilization)
    assert split.metrics["instance.L"] == pytest.approx(one.L) and split.metrics["arrival_rate"] == 45
    assert split.metrics["latency.p99"] == pytest.approx(analytic.mmc_sojourn_quantile(0.99, 15.0, 10.0, 2))
    for balance in ("round_robin", "least_busy", "power_of_two"):
        other = pool(balance)
        assert not other.exact and "upper estimates" in other.formula
        assert other.metrics["W"] == pytest.approx(one.W) and "p_wait" not in other.metrics


def test_lifo_keeps_the_means_and_drops_the_percentiles() -> None:
    fifo, lifo = (analyse(_model({"pool": {"workers": 2, "discipline": d, "service": EXP, "next": "back"},
                                  "back": {"service": LOGNORMAL}}, {"pay": {"rate": 6}})) for d in ("fifo", "lifo"))
    for name in ("pool", "back"):  # Burke: the LIFO station's departures are Poisson as well
        assert lifo.stations[name].exact
        for metric in ("L", "Lq", "W", "Wq", "utilization"):
            assert lifo.stations[name].metrics[metric] == pytest.approx(fifo.stations[name].metrics[metric])
    assert "latency.p99" in fifo.stations["pool"].metrics and "latency.p99" not in lifo.stations["pool"].metrics
    assert lifo.system.metrics["W"] == pytest.approx(fifo.system.metrics["W"])


def _classes(workers: int, service: dict, horizon: float = 100.0):
    rates, priorities = {"urgent": 2.0, "usual": 3.0, "bulk": 2.0}, {"urgent": "high", "usual": "normal", "bulk": "low"}
    return _model({"x": {"workers": workers, "discipline": "priority", "service": service}},
                  {n: {"rate": r, "priority": priorities[n]} for n, r in rates.items()}, horizon=horizon), rates


def test_priority_classes_on_one_server_follow_cobham() -> None:
    model, rates = _classes(1, LOGNORMAL)
    theory = analyse(model)
    x = theory.stations["x"]
    classes = analytic.priority_mg1(list(rates.values()), [0.1] * 3, [1.5**2] * 3)
    assert x.exact and "Cobham" in x.formula and "latency.p99" not in x.metrics
    # same service for every class: the mixture is Pollaczek-Khinchine's (conservation law)
    assert x.metrics["Wq"] == pytest.approx(analytic.mg1(7.0, 0.1, 1.5**2).Wq)
    for (name, rate), cls in zip(rates.items(), classes):
        assert x.metrics[f"streams.{name}.Wq"] == pytest.approx(cls.Wq)
        stream = theory.streams[name].metrics
        assert stream["Wq"] == pytest.approx(cls.Wq) and stream["W"] == pytest.approx(cls.W)
        assert stream["L"] == pytest.approx(rate * cls.W)
    assert theory.system.metrics["W"] == pytest.approx(x.metrics["W"])


def test_priority_classes_on_several_servers() -> None:
    model, rates = _classes(3, EXP)
    theory = analyse(model)
    x, fifo = theory.stations["x"], analytic.mmc(7.0, 10.0, 3)
    assert x.exact and x.metrics["Wq"] == pytest.approx(fifo.Wq)
    mix = sum(rate * x.metrics[f"streams.{name}.Wq"] for name, rate in rates.items()) / 7.0
    assert mix == pytest.approx(fifo.Wq)  # the classes share the FIFO mean out
    waits = [x.metrics[f"streams.{name}.Wq"] for name in rates]
    assert waits == sorted(waits)
    one, _ = _classes(1, EXP)
    single = analytic.priority_mg1(list(rates.values()), [0.1] * 3, [1.0] * 3)
    assert [analyse(one).stations["x"].metrics[f"streams.{n}.Wq"] for n in rates] == pytest.approx([c.Wq for c in single])


def test_priority_streams_compare_with_a_run() -> None:
    model, rates = _classes(1, {"dist": "exponential", "mean": 0.1}, horizon=300.0)
    result = run(model)
    rows = {row.name: row for row in compare(result, analyse(model))}
    for name in rates:
        row = rows[f"streams.{name}.Wq"]
        ci = interval(result, row.name)
        assert row.exact and ci.low <= row.theory <= ci.high, f"{row.name}: {row.theory:.5g} outside {ci}"


# ---------------------------------------------------------------- what no formula here covers


def test_batches_classification_parallel_calls_and_schedules_are_refused_with_what_they_feed() -> None:
    batch = analyse(_model({"settle": {"batch": {"size": 10}, "service": {"per_batch": 0.1, "per_item": 0.001},
                                       "next": "after"}, "after": {"service": EXP}}, {"pay": {"rate": 5}}))
    assert "batch station" in batch.stations["settle"].reason
    assert "batch station 'settle'" in batch.stations["after"].reason and "bursts" in batch.stations["after"].reason
    classify = {"logistic": {"intercept": -3, "amount": 0.01}, "review_above": 0.5, "decline_above": 0.9}
    scored = analyse(_model({"risk": {"workers": 2, "service": EXP, "classify": classify,
                                      "next": {"approve": "bank", "review": "people", "decline": "done"}},
                             "bank": {"workers": 2, "service": EXP}, "people": {"service": EXP}},
                            {"pay": {"rate": 10, "amount": {"dist": "lognormal", "median": 100, "p99": 900}}}))
    assert scored.stations["risk"].exact  # scoring happens after service: the station itself is M/M/2
    assert scored.stations["risk"].metrics["Wq"] == pytest.approx(analytic.mmc(10.0, 10.0, 2).Wq)
    for name in ("bank", "people"):
        assert "risk classification at station 'risk'" in scored.stations[name].reason
    assert not scored.system.ok and not scored.streams["pay"].ok
    forked = analyse(_model({"api": {"workers": 2, "service": EXP, "parallel": ["fraud", "ledger"], "next": "reply"},
                             "fraud": {"service": EXP}, "ledger": {"service": EXP}, "reply": {"service": EXP}},
                            {"pay": {"rate": 5}}))
    assert forked.stations["api"].exact
    assert all("called in parallel by station 'api'" in forked.stations[n].reason for n in ("fraud", "ledger"))
    assert "after the join" in forked.stations["reply"].reason
    shifts = analyse(_model({"desk": {"workers": 2, "schedule": [{"at": 50, "workers": 4}], "service": EXP}},
                            {"pay": {"rate": 5}}))
    assert "schedule" in shifts.stations["desk"].reason
    constant = analyse(_model({"desk": {"workers": 2, "schedule": [{"at": 0, "workers": 3}], "service": EXP}},
                              {"pay": {"rate": 5}}))
    assert constant.stations["desk"].metrics["Wq"] == pytest.approx(analytic.mmc(5.0, 10.0, 3).Wq)


# ---------------------------------------------------------------- closed populations


def test_closed_population_is_exact_mva() -> None:
    stations = {"a": {"service": {"dist": "exponential", "mean": 0.05}, "next": {"b": 0.5, "c": 0.5}},
                "b": {"service": {"dist": "exponential", "mean": 0.08}, "instances": 2, "balance": "random"},
                "c": {"workers": 20, "service": {"dist": "lognormal", "mean": 0.3, "cv": 2}}}   # a delay: 20 >= N
    theory = analyse(_model(stations, {"users": {"clients": 12, "think": {"dist": "exponential", "mean": 0.5}}}))
    exact = analytic.mva(12, {"a": 1.0, "b0": 0.25, "b1": 0.25}, {"a": 0.05, "b0": 0.08, "b1": 0.08},
                         think_time=0.5 + 0.5 * 0.3)
    x = exact.throughput
    assert theory.system.exact and "MVA" in theory.system.formula
    assert theory.system.metrics["throughput"] == pytest.approx(x)
    assert theory.system.metrics["W"] == pytest.approx(12 / x - 0.5)     # response time, think excluded
    assert theory.streams["users"].metrics["W"] == pytest.approx(12 / x - 0.5)
    a, b, c = (theory.stations[n].metrics for n in "abc")
    assert a["W"] == pytest.approx(exact.stations["a"].W) and a["utilization"] == pytest.approx(x * 0.05)
    assert b["L"] == pytest.approx(2 * exact.stations["b0"].L) and b["arrival_rate"] == pytest.approx(x / 2)
    assert c["W"] == pytest.approx(0.3) and c["Wq"] == 0 and c["utilization"] == pytest.approx(x / 2 * 0.3 / 20)
    assert theory.system.metrics["L"] == pytest.approx(a["L"] + b["L"] + c["L"])


def test_closed_populations_outside_mva_are_refused() -> None:
    def users(**extra):
        return {"users": {"clients": 5, "think": 1.0, **extra}}

    many = analyse(_model({"a": {"workers": 2, "service": LOGNORMAL}}, users()))
    assert "2 workers for 5 clients" in many.streams["users"].reason and not many.stations["a"].ok
    assert analyse(_model({"a": {"workers": 2, "service": EXP}}, users())).stations["a"].exact
    lognormal = analyse(_model({"a": {"service": LOGNORMAL}}, users()))
    assert "non-exponential" in lognormal.streams["users"].reason
    mixed = analyse(_model({"a": {"service": EXP}}, {**users(), "open": {"rate": 2}}))
    assert "also reached by the open stream 'open'" in mixed.stations["a"].reason
    assert "closed populations among them" in mixed.system.reason
    impatient = analyse(_model({"a": {"service": EXP}}, users(timeout=0.5)))
    assert "time out" in impatient.streams["users"].reason
    small = analyse(_model({"a": {"queue": 2, "service": EXP}}, users()))
    assert "bounded queue" in small.streams["users"].reason
    roomy = analyse(_model({"a": {"queue": 4, "service": EXP}}, users()))   # 1 + 4 places for 5 clients
    assert roomy.stations["a"].exact
