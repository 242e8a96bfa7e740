"""Offered load from the traffic equations, and the warnings a run prints before it starts."""

from __future__ import annotations

import math

import pytest
from conftest import scenario

from paysim.distributions import Z99
from paysim.errors import ScenarioError
from paysim.preflight import expected_arrivals, stability_warnings, station_loads


def _feedback(rate: float, queue: int | None = None, profile: list | None = None, horizon: float = 100):
    arrival = {"rate": rate, "enter": "a"}
    if profile:
        arrival["profile"] = profile
    stations = {"a": {"workers": 2, "service": {"dist": "exponential", "mean": 0.01}, "next": {"b": 0.5, "done": 0.5}},
                "b": {"workers": 1, "service": 0.02, "next": {"a": 0.2, "done": 0.8}}}
    if queue is not None:
        stations["b"]["queue"] = queue
    return scenario(stations, {"in": arrival}, horizon=horizon, warmup=0)


def test_loads_solve_the_traffic_equations():
    loads = station_loads(_feedback(90))
    # λa = 90 + 0.2 λb, λb = 0.5 λa  =>  λa = 100, λb = 50
    assert loads["a"].arrival_rate == pytest.approx(100)
    assert loads["b"].arrival_rate == pytest.approx(50)
    assert loads["a"].utilization == pytest.approx(100 * 0.01 / 2)
    assert loads["b"].utilization == pytest.approx(50 * 0.02)


def test_profile_is_averaged_over_the_window_and_peaks_are_kept():
    model = _feedback(45, profile=[{"at": 0, "x": 1}, {"at": 50, "x": 3}, {"at": 75, "x": 1}])
    load = station_loads(model)["a"]
    assert load.arrival_rate == pytest.approx(50 * 1.5)      # multiplier averages (50 + 75 + 25) / 100
    assert load.peak_arrival_rate == pytest.approx(50 * 3)
    assert expected_arrivals(model) == pytest.approx(45 * 1.5 * 100)


def test_stable_system_has_no_warning():
    assert stability_warnings(_feedback(45)) == []


def test_unstable_unbounded_station_is_flagged():
    lines = stability_warnings(_feedback(90))     # b at 100%
    assert len(lines) == 1 and "'b' is unstable" in lines[0] and "100%" in lines[0]


def test_bounded_queue_is_not_flagged():
    assert stability_warnings(_feedback(90, queue=10)) == []   # b at 100%, but its losses keep it stable


def test_peak_overload_is_mentioned():
    lines = stability_warnings(_feedback(45, profile=[{"at": 0, "x": 1}, {"at": 50, "x": 3}, {"at": 60, "x": 1}]))
    assert len(lines) == 1 and "peak" in lines[0]


EXP = {"dist": "exponential", "mean": 0.01}


def _risk(amount: dict | None, rate: float = 100.0):
    """risk scores amounts: review above p = 0.5 (amount > 1750), decline above p = 0.95."""
    arrival = {"rate": rate, **({"amount": amount} if amount else {})}
    stations = {"risk": {"workers": 4, "service": EXP,
                         "classify": {"logistic": {"intercept": -7.0, "amount": 0.004},
                                      "review_above": 0.5, "decline_above": 0.95},
                         "next": {"approve": "acquirer", "review": "analysts", "decline": "done"}},
                "acquirer": {"workers": 4, "service": EXP},
                "analysts": {"workers": 2, "service": {"dist": "exponential", "mean": 0.1}}}
    return scenario(stations, {"card": arrival}, horizon=100, warmup=0)


def _lognormal_tail(x: float, mu: float, sigma: float) -> float:
    return 0.5 * math.erfc((math.log(x) - mu) / (sigma * math.sqrt(2)))


def test_classification_shares_follow_the_amount_distribution():
    # amounts lognormal with median 1200 and sigma 0.8: P(review) = P(1750 < amount <= 2486.1)
    mu, sigma = math.log(1200.0), 0.8
    loads = station_loads(_risk({"dist": "lognormal", "median": 1200, "p99": 1200 * math.exp(0.8 * Z99)}))
    review_at, decline_at = 7.0 / 0.004, (7.0 + math.log(19.0)) / 0.004   # logit(0.5), logit(0.95)
    decline = _lognormal_tail(decline_at, mu, sigma)
    review = _lognormal_tail(review_at, mu, sigma) - decline
    tolerance = 4 * math.sqrt(0.25 / 20_000) * 100      # 4 sd of a share from 20,000 draws, at 100/s
    assert loads["analysts"].arrival_rate == pytest.approx(100 * review, abs=tolerance)
    assert loads["acquirer"].arrival_rate == pytest.approx(100 * (1 - review - decline), abs=tolerance)
    assert loads["risk"].arrival_rate == pytest.approx(100)
    assert station_loads(_risk({"dist": "lognormal", "median": 1200, "p99": 1200 * math.exp(0.8 * Z99)})) == loads


def test_a_stream_without_amounts_cannot_reach_a_classifier_that_reads_them():
    with pytest.raises(ScenarioError, match="stream 'card' reaches 'risk' without 'amount'"):
        _risk(None)


def test_an_intercept_only_score_approves_everyone():
    model = _risk({"dist": "lognormal", "median": 40, "p99": 900})
    risk = model.stations["risk"]
    classify = risk.classify.model_copy(update={"logistic": {"intercept": -7.0}})
    model = model.model_copy(update={"stations": {**model.stations, "risk": risk.model_copy(update={"classify": classify})}})
    loads = station_loads(model)    # p = 1/(1 + e^7) < 0.5: every transaction is approved
    assert loads["acquirer"].arrival_rate == pytest.approx(100) and loads["analysts"].arrival_rate == 0
    assert stability_warnings(model) == []   # equal weights would put analysts at 1667%


def test_parallel_calls_each_get_the_callers_departures():
    stations = {"api": {"workers": 2, "service": EXP, "parallel": ["fraud", "ledger"], "next": {"audit": 0.4, "done": 0.6}},
                "fraud": {"workers": 2, "service": EXP},
                "ledger": {"workers": 2, "service": EXP},
                "audit": {"service": EXP}}
    loads = station_loads(scenario(stations, {"pay": {"rate": 50}}, horizon=100, warmup=0))
    assert [loads[n].arrival_rate for n in ("api", "fraud", "ledger")] == pytest.approx([50, 50, 50])
    assert loads["audit"].arrival_rate == pytest.approx(20)   # after the join, the caller routes on


def test_closed_population_sends_at_most_n_over_think_plus_demand():
    stations = {"a": {"service": {"dist": "exponential", "mean": 0.05}, "next": "b"},
                "b": {"workers": 2, "service": {"dist": "exponential", "mean": 0.15}}}
    model = scenario(stations, {"users": {"clients": 4, "think": 0.8}}, horizon=100, warmup=0)
    loads = station_loads(model)
    assert loads["a"].arrival_rate == pytest.approx(4 / (0.8 + 0.05 + 0.15))   # 4/s; a at 20%, b at 30%
    assert loads["b"].utilization == pytest.approx(4 * 0.15 / 2)
    assert loads["a"].bounded and expected_arrivals(model) == pytest.approx(4 * 100)
    crowd = scenario(stations, {"users": {"clients": 1000, "think": 0.1}}, horizon=100, warmup=0)
    # the bound N / (Z + D) = 3333/s; a serves at most 20/s, so that is the bound
    assert station_loads(crowd)["a"].arrival_rate == pytest.approx(20)
    assert station_loads(crowd)["a"].utilization == pytest.approx(1)
    assert stability_warnings(crowd) == []      # a closed population cannot grow a queue without end
    mixed = scenario(stations, {"users": {"clients": 1000, "think": 0.1}, "open": {"rate": 5, "enter": "a"}},
                     horizon=100, warmup=0)
    loads = station_loads(mixed)
    assert loads["a"].arrival_rate == pytest.approx(20) and loads["a"].open_utilization == pytest.approx(0.25)
    assert not loads["a"].bounded and stability_warnings(mixed) == []


def test_capacity_counts_threads_instances_schedules_and_batches():
    def load(station: dict, rate: float = 10.0):
        return station_loads(scenario({"s": station}, {"pay": {"rate": rate}}, horizon=100, warmup=0))["s"]

    unbounded = load({"executor": {"core": 2, "max": 8}, "service": 0.1})
    assert unbounded.capacity == pytest.approx(20) and not unbounded.bounded   # never grows past core
    bounded = load({"executor": {"core": 2, "max": 8, "queue": 5}, "service": 0.1})
    assert bounded.capacity == pytest.approx(80) and bounded.bounded
    assert load({"workers": 3, "instances": 2, "service": 0.1}).utilization == pytest.approx(10 * 0.1 / 6)
    assert load({"workers": 1, "schedule": [{"at": 10, "workers": 4}], "service": 0.1}).capacity == pytest.approx(40)
    # a batch of 100 every 30 s, 3 s + 10 ms per item: 0.04 s per item at 10/s (300 would gather)
    batch = load({"batch": {"size": 100, "every": 30}, "service": {"per_batch": 3, "per_item": 0.01}})
    assert batch.utilization == pytest.approx(10 * (3 / 100 + 0.01))
    # every 5 s only 50 gather: 3/50 + 0.01 per item
    timed = load({"batch": {"size": 100, "every": 5}, "service": {"per_batch": 3, "per_item": 0.01}})
    assert timed.utilization == pytest.approx(10 * (3 / 50 + 0.01))
