"""paysim.theory (which formula fits each station, or why none does) and paysim.compare."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from conftest import interval, run, scenario
from paysim import analytic
from paysim.compare import compare, comparison_table, comparisons_to_json
from paysim.scenario import load_scenario
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
