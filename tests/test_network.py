"""The network model against hand solutions: visit ratios of a feedback network, reachability,
routing after risk scoring and parallel calls, servers and capacity, and rates under a profile."""

from __future__ import annotations

import math

import pytest
from conftest import scenario

from paysim.network import (
    Network,
    can_leave,
    capacity,
    instance_servers,
    item_time,
    mean_workers,
    servers,
    worker_steps,
)

EXP = {"dist": "exponential", "mean": 0.01}


def _feedback() -> Network:
    """a -> b; b -> a 1/4, c 1/4, done 1/2; c -> b 1/2, done 1/2; d is never reached.

    By hand, per request entering at a: V_a = 1 + V_b/4, V_b = V_a + V_c/2, V_c = V_b/4, so
    V_b = V_a/(7/8), V_a = 1 + (2/7)V_a: V_a = 7/5, V_b = 8/5, V_c = 2/5 (and what leaves,
    V_b/2 + V_c/2, is 1)."""
    stations = {"a": {"service": EXP, "next": "b"},
                "b": {"service": EXP, "next": {"a": 0.25, "c": 0.25, "done": 0.5}},
                "c": {"service": EXP, "next": {"b": 0.5, "done": 0.5}},
                "d": {"service": EXP}}
    return Network(scenario(stations, {"pay": {"rate": 10, "enter": "a"}}, 100.0, 0.0))


def test_visit_ratios_of_a_feedback_network_match_the_hand_solution() -> None:
    net = _feedback()
    assert net.visits("pay") == pytest.approx({"a": 1.4, "b": 1.6, "c": 0.4, "d": 0.0}, rel=1e-12)
    assert net.flow("pay", 10.0) == pytest.approx({"a": 14.0, "b": 16.0, "c": 4.0, "d": 0.0}, rel=1e-12)
    # half of c's output lost: V_c = V_b/4, V_b = V_a + V_c/4 = V_a + V_b/16, V_a = 1 + V_b/4,
    # so V_b = (16/15)V_a, V_a = 1 + (4/15)V_a = 15/11, V_b = 16/11, V_c = 4/11
    kept = net.flow("pay", 1.0, {"a": 1.0, "b": 1.0, "c": 0.5, "d": 1.0})
    assert kept == pytest.approx({"a": 15 / 11, "b": 16 / 11, "c": 4 / 11, "d": 0.0}, rel=1e-12)
    assert net.calls("pay") == {"a": 0.0, "b": 0.0, "c": 0.0, "d": 0.0}
    assert net.open_rates["b"] == pytest.approx((16.0, 16.0), rel=1e-12)   # no profile: mean = peak


def test_reachability_who_feeds_whom_and_who_can_leave() -> None:
    net = _feedback()
    assert net.reach == {"a": {"a", "b", "c"}, "b": {"a", "b", "c"}, "c": {"a", "b", "c"}, "d": set()}
    assert net.visited("pay") == {"a", "b", "c"}
    assert net.members("pay") == ["a", "b", "c"]
    assert net.streams == {"a": ["pay"], "b": ["pay"], "c": ["pay"], "d": []}
    assert net.ancestors["d"] == set() and net.ancestors["c"] == {"a", "b", "c"}
    assert can_leave({"x": {"y": 1.0}, "y": {"x": 1.0}, "z": {"x": 0.5, "done": 0.5}}) == {"done", "z"}
    assert net.open == ["pay"] and net.closed == []


def test_parallel_branches_are_called_once_per_visit_and_reached() -> None:
    stations = {"api": {"service": EXP, "parallel": ["fraud", "ledger"], "next": {"api": 0.5, "done": 0.5}},
                "fraud": {"service": EXP}, "ledger": {"service": EXP}}
    arrivals = {"web": {"rate": 4, "enter": "api"}, "users": {"clients": 3, "think": 1.0, "enter": "fraud"}}
    net = Network(scenario(stations, arrivals, 100.0, 0.0))
    assert net.visits("web") == pytest.approx({"api": 2.0, "fraud": 0.0, "ledger": 0.0})   # 1/(1 - 1/2)
    assert net.calls("web") == pytest.approx({"api": 0.0, "fraud": 2.0, "ledger": 2.0})
    assert net.visited("web") == {"api", "fraud", "ledger"} and net.visited("users") == {"fraud"}
    assert net.streams["fraud"] == ["web", "users"] and net.streams["api"] == ["web"]
    assert net.open == ["web"] and net.closed == ["users"]
    # a closed population brings no open load: fraud sees web's 4/s x 2 calls only
    assert net.open_rates["fraud"] == pytest.approx((8.0, 8.0))


def _scored(amount_a: float, amount_b: float) -> Network:
    """Risk scoring with a constant amount per stream: p = 1/(1 + exp(-(-5 + 0.01 amount))), so
    amount 100 scores p = 0.018 (approve) and amount 1000 scores p = 0.993 (decline)."""
    stations = {"risk": {"service": EXP, "classify": {"logistic": {"intercept": -5.0, "amount": 0.01},
                                                      "review_above": 0.5, "decline_above": 0.9},
                         "next": {"approve": "acquirer", "review": "analysts", "decline": "risk"}},
                "acquirer": {"service": EXP}, "analysts": {"service": EXP}}
    arrivals = {"small": {"rate": 10, "enter": "risk", "amount": amount_a},
                "large": {"rate": 1, "enter": "risk", "amount": amount_b}}
    return Network(scenario(stations, arrivals, 100.0, 0.0))


def test_classification_routes_each_stream_by_its_own_outcome_shares() -> None:
    net = _scored(100.0, 1000.0)
    assert net.routing("small")["risk"] == {"acquirer": 1.0, "analysts": 0.0, "risk": 0.0}
    assert net.routing("large")["risk"] == {"acquirer": 0.0, "analysts": 0.0, "risk": 1.0}
    assert net.visits("small") == pytest.approx({"risk": 1.0, "acquirer": 1.0, "analysts": 0.0})
    # every large transaction is declined back into risk: it never leaves, so infinitely many visits
    assert net.visits("large") == {"risk": math.inf, "acquirer": 0.0, "analysts": 0.0}
    # reachability follows every route a score could take, whatever this stream's shares
    assert net.visited("small") == {"risk", "acquirer", "analysts"}


def _station(**spec) -> object:
    stations = {"s": {"service": EXP, **spec}}
    return scenario(stations, {"pay": {"rate": 1}}, 100.0, 10.0).stations["s"]


def test_servers_with_instances_executors_and_schedules() -> None:
    assert servers(_station(workers=3, instances=4)) == 12
    assert servers(_station(executor={"core": 2, "max": 8, "queue": 10}, instances=2)) == 16   # max threads
    assert servers(_station(executor={"core": 2, "max": 8}, instances=2)) == 4   # unbounded queue: never past core
    assert instance_servers(_station(executor={"core": 0, "max": 8})) == 1       # a thread for queued work
    scheduled = _station(workers=2, schedule=[{"at": 50, "workers": 6}, {"at": 80, "workers": 1}], instances=2)
    assert servers(scheduled) == 12                                               # the schedule's peak
    assert worker_steps(scheduled) == [(0.0, 2), (50.0, 6), (80.0, 1)]
    # time-average over the window [10, 100]: (2*40 + 6*30 + 1*20) / 90 workers per instance
    assert mean_workers(scheduled, 10.0, 100.0) == pytest.approx(2 * (80 + 180 + 20) / 90)
    assert mean_workers(_station(executor={"core": 2, "max": 8}, instances=3), 10.0, 100.0) == 24


def test_capacity_is_servers_over_the_time_per_item() -> None:
    assert capacity(_station(workers=3, instances=2, service=0.05)) == pytest.approx(6 / 0.05)
    batch = _station(workers=1, batch={"size": 10, "every": 1.0}, service={"per_batch": 0.5, "per_item": 0.01})
    assert item_time(batch) == pytest.approx(0.5 / 10 + 0.01)              # full batches
    assert item_time(batch, 4.0) == pytest.approx(0.5 / 4 + 0.01)          # 4/s gathers 4 items a second
    assert capacity(batch, 4.0) == pytest.approx(1 / (0.5 / 4 + 0.01))


def test_base_and_peak_rates_with_a_profile() -> None:
    """Rate 10/s at x1, x3 from 30 s to 60 s, x1 after; over the window [0, 90] the mean
    multiplier is (30 + 90 + 30)/90 = 5/3 and the peak 3; a window after the peak sees x1."""
    stations = {"a": {"service": EXP, "next": {"a": 0.5, "done": 0.5}}}
    profile = [{"at": 0, "x": 1.0}, {"at": 30, "x": 3.0}, {"at": 60, "x": 1.0}]
    net = Network(scenario(stations, {"pay": {"rate": 10, "profile": profile}}, 90.0, 0.0))
    assert net.multipliers("pay") == pytest.approx((5 / 3, 3.0))
    assert net.stream_rates("pay") == pytest.approx((50 / 3, 30.0))
    assert net.open_rates["a"] == pytest.approx((2 * 50 / 3, 60.0))     # two visits per request
    late = Network(scenario(stations, {"pay": {"rate": 10, "profile": profile}}, 90.0, 60.0))
    assert late.stream_rates("pay") == pytest.approx((10.0, 10.0))
    assert late.stream_rates("pay", 0.0, 90.0) == pytest.approx((50 / 3, 30.0))   # any window on request
