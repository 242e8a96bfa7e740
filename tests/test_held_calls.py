"""A station's ``calls``: its worker stays held while it calls other stations in turn.

Deterministic cases pin the semantics exactly (one request at a time, fixed service times:
what the caller's time, ``held`` and the outcome must be); the Erlang B case checks the
blocking of a caller without waiting room against theory; the network model's visit ratios
count calls as load.
"""

from __future__ import annotations

import math

import pytest
from conftest import SEED, assert_little, scenario

from paysim.analytic import erlang_b
from paysim.network import Network
from paysim.runner import simulate

EXP = "exponential"


def one_at_a_time(stations: dict, horizon: float = 100.0, **stream) -> object:
    """A request every second, each alone in the system (every time below is well under 1 s)."""
    return scenario(stations, {"card": {"rate": 1.0, "process": "deterministic", **stream}}, horizon, 0.0, 2)


def row(model, engine: str = "simpy") -> dict[str, float]:
    result = simulate(model, jobs=1, engine=engine)
    assert_little(result)
    return result.rows[0]


SEQUENTIAL = {"gateway": {"service": 0.003, "calls": ["risk", "acquirer"]},
              "risk": {"service": 0.010}, "acquirer": {"service": 0.100}}


def test_sequential_calls_hold_the_worker_for_own_service_plus_each_call():
    r = row(one_at_a_time(SEQUENTIAL))
    assert r["stations.gateway.W"] == pytest.approx(0.113)
    assert r["stations.gateway.S"] == pytest.approx(0.113)        # the holding time
    assert r["streams.card.W"] == pytest.approx(0.113)            # the client waits for the whole chain
    # held: a worker waits on calls for 0.110 of every second; busy counts it too
    assert r["stations.gateway.held"] == pytest.approx(0.110, rel=0.02)
    assert r["stations.gateway.busy"] == pytest.approx(0.113, rel=0.02)
    assert r["stations.risk.throughput"] == pytest.approx(r["stations.gateway.throughput"])
    assert "stations.risk.held" not in r                          # only a station with calls reports held


@pytest.mark.parametrize(("join", "holding"), [("all", 0.003 + 0.030), ("any", 0.003 + 0.010)])
def test_a_parallel_step_waits_for_all_or_the_first_answer(join, holding):
    model = one_at_a_time({"gateway": {"service": 0.003, "calls": [{"parallel": ["fraud", "balance"], "join": join}]},
                           "fraud": {"service": 0.010}, "balance": {"service": 0.030}})
    r = row(model)
    assert r["stations.gateway.W"] == pytest.approx(holding)
    # join any withdraws the slower call in service (every one of them)
    assert r["stations.balance.cancelled"] == (r["stations.gateway.throughput"] * 100 if join == "any" else 0)


def test_a_nested_call_counts_in_every_caller_up_the_chain():
    model = one_at_a_time({"gateway": {"service": 0.001, "calls": ["risk"]},
                           "risk": {"service": 0.010, "calls": ["scoring", "scoring"]},
                           "scoring": {"service": 0.020}})
    r = row(model)
    assert r["stations.risk.W"] == pytest.approx(0.050)
    assert r["stations.gateway.W"] == pytest.approx(0.051)
    assert r["stations.scoring.throughput"] == pytest.approx(2 * r["stations.risk.throughput"])


@pytest.mark.parametrize("on_timeout", ["cancel", "continue"])
def test_a_step_timeout_retries_then_fails_the_caller(on_timeout):
    """acquirer takes 0.3 s but the step waits 0.1 s, three times (backoff 0.05 s, then 0.1 s):
    the caller fails after 0.003 + 3 * 0.1 + 0.15 s, timed out; the acquirer's work is withdrawn
    in service (cancel) or finished for nobody (continue)."""
    model = one_at_a_time({"gateway": {"service": 0.003, "workers": 1,
                                       "calls": [{"station": "acquirer", "timeout": 0.1,
                                                  "retry": {"attempts": 3, "base": 0.05}}]},
                           "acquirer": {"service": 0.3, "workers": 5, "on_timeout": on_timeout}})
    r = row(model)
    assert r["streams.card.timed_out"] == r["streams.card.arrival_rate"] * 100
    assert r["streams.card.goodput"] == 0
    assert r["stations.gateway.S"] == pytest.approx(0.003 + 0.3 + 0.15)
    assert r["stations.gateway.error_rate"] == 1.0               # a failed call is the caller's error
    tries = 3 * r["stations.gateway.throughput"] * 100
    assert r["stations.acquirer.entry_rate"] * 100 == pytest.approx(tries, abs=3)
    assert r["stations.acquirer.cancelled"] == (pytest.approx(tries, abs=3) if on_timeout == "cancel" else 0)


def test_a_callee_that_rejects_fails_the_step_and_its_retry_can_succeed():
    """Two clients send at once (at 0.5 s, once in the run); checks has one worker and no queue, so the second call is
    rejected while the first is served: with a step retry 20 ms later it succeeds, without
    one the second request fails, rejected."""
    def run(step: object) -> dict[str, float]:
        return row(scenario({"gateway": {"workers": 2, "service": {"dist": "uniform", "low": 0.001, "high": 0.0011},
                                         "calls": [step]},
                             "checks": {"workers": 1, "queue": 0, "service": 0.010}},
                            {"card": {"clients": 2, "think": 0.5}}, 1.0, 0.0, 1))

    r = run({"station": "checks", "retry": {"attempts": 2, "base": 0.02, "backoff": "constant"}})
    assert r["stations.checks.rejected"] == 1 and r["streams.card.goodput"] == 2
    r = run("checks")
    assert r["streams.card.rejected"] == 1 and r["streams.card.goodput"] == 1


def test_a_client_timeout_while_held_withdraws_the_calls_with_cancel():
    model = one_at_a_time({"gateway": {"service": 0.003, "on_timeout": "cancel", "calls": ["acquirer"]},
                           "acquirer": {"service": 0.3}}, timeout=0.1)
    r = row(model)
    assert r["streams.card.cancelled"] == r["streams.card.arrival_rate"] * 100
    assert r["stations.acquirer.cancelled"] == r["stations.acquirer.entry_rate"] * 100
    assert r["stations.gateway.held"] == pytest.approx(0.097, rel=0.03)   # released at the client's timeout


def test_calls_carry_load_in_the_network_model():
    model = scenario({"gateway": {"service": 0.001, "calls": ["risk", {"parallel": ["risk", "acquirer"]}]},
                      "risk": {"service": 0.001, "calls": ["ledger"]}, "acquirer": {"service": 0.001},
                      "ledger": {"service": 0.001}},
                     {"card": {"rate": 10.0}}, 10.0, 0.0)
    network = Network(model)
    assert network.served("card") == {"gateway": 1.0, "risk": 2.0, "acquirer": 1.0, "ledger": 2.0}
    assert network.visited("card") == {"gateway", "risk", "acquirer", "ledger"}
    assert network.open_rates["ledger"] == (20.0, 20.0)


@pytest.mark.parametrize(("engine", "horizon", "detects"), [("simpy", 200.0, 0.06)])
def test_a_held_caller_without_waiting_room_blocks_as_erlang_b(engine, horizon, detects):
    """No waiting room (queue: 0): a caller's blocking is Erlang B at the load λ·E[holding],
    whatever the holding time's distribution (insensitivity); holding = own exponential
    service + a uniform call to a station with enough workers never to queue (100 for a
    mean of 4 in use). 5 workers at 40/s x 0.1 s: B(5, 4) = 0.199. The 99.9% CI over 10
    replications detects a holding time that leaves out the call (B(5, 0.8) = 0.001) or counts
    it twice (B(5, 7.2) = 0.45), and a bias of ``detects`` times B (twice the half-width: the
    SimPy engine runs shorter replications)."""
    model = scenario({"gateway": {"workers": 5, "queue": 0, "service": {"dist": EXP, "mean": 0.02},
                                  "calls": ["acquirer"]},
                      "acquirer": {"workers": 100, "service": {"dist": "uniform", "low": 0.0, "high": 0.16}}},
                     {"card": {"rate": 40.0}}, horizon, 30.0, 10, SEED)
    result = simulate(model, jobs=1, engine=engine)
    values = [r["stations.gateway.rejection_rate"] for r in result.rows]
    mean = sum(values) / len(values)
    half = 3.88 * math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1) / len(values))  # t(9) 99.9%
    assert abs(mean - erlang_b(5, 4.0)) <= half, (mean, half, erlang_b(5, 4.0))
    assert 2 * half < detects * erlang_b(5, 4.0)
