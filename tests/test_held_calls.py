"""A station's ``calls``: its worker stays held while it calls other stations in turn.

Deterministic cases pin the semantics exactly on both engines (one request at a time, fixed
service times: what the caller's time, ``held`` and the outcome must be); the same-path
cases check that the compiled engine runs the SimPy engine's sample path (the same numbers
to rounding) through sequential and parallel steps, step timeouts and retries, nested
calls, rejecting and erring callees and client timeouts; the Erlang B case checks the
blocking of a caller without waiting room against theory on both engines; the network
model's visit ratios count calls as load.
"""

from __future__ import annotations

import math

import pytest
from conftest import SEED, assert_little, scenario

from paysim.analytic import erlang_b
from paysim.engine.compiled.driver import unsupported
from paysim.network import Network
from paysim.runner import simulate

EXP = "exponential"
ENGINES = ["simpy", "fast"]


def one_at_a_time(stations: dict, horizon: float = 100.0, **stream) -> object:
    """A request every second, each alone in the system (every time below is well under 1 s)."""
    return scenario(stations, {"card": {"rate": 1.0, "process": "deterministic", **stream}}, horizon, 0.0, 2)


def row(model, engine: str = "simpy") -> dict[str, float]:
    result = simulate(model, jobs=1, engine=engine)
    assert_little(result)
    return result.rows[0]


SEQUENTIAL = {"gateway": {"service": 0.003, "calls": ["risk", "acquirer"]},
              "risk": {"service": 0.010}, "acquirer": {"service": 0.100}}


@pytest.mark.parametrize("engine", ENGINES)
def test_sequential_calls_hold_the_worker_for_own_service_plus_each_call(engine):
    r = row(one_at_a_time(SEQUENTIAL), engine)
    assert r["stations.gateway.W"] == pytest.approx(0.113)
    assert r["stations.gateway.S"] == pytest.approx(0.113)        # the holding time
    assert r["streams.card.W"] == pytest.approx(0.113)            # the client waits for the whole chain
    # held: a worker waits on calls for 0.110 of every second; busy counts it too
    assert r["stations.gateway.held"] == pytest.approx(0.110, rel=0.02)
    assert r["stations.gateway.busy"] == pytest.approx(0.113, rel=0.02)
    assert r["stations.risk.throughput"] == pytest.approx(r["stations.gateway.throughput"])
    assert "stations.risk.held" not in r                          # only a station with calls reports held


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("join", "holding"), [("all", 0.003 + 0.030), ("any", 0.003 + 0.010)])
def test_a_parallel_step_waits_for_all_or_the_first_answer(join, holding, engine):
    model = one_at_a_time({"gateway": {"service": 0.003, "calls": [{"parallel": ["fraud", "balance"], "join": join}]},
                           "fraud": {"service": 0.010}, "balance": {"service": 0.030}})
    r = row(model, engine)
    assert r["stations.gateway.W"] == pytest.approx(holding)
    # join any withdraws the slower call in service (every one of them)
    assert r["stations.balance.cancelled"] == (r["stations.gateway.throughput"] * 100 if join == "any" else 0)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_nested_call_counts_in_every_caller_up_the_chain(engine):
    model = one_at_a_time({"gateway": {"service": 0.001, "calls": ["risk"]},
                           "risk": {"service": 0.010, "calls": ["scoring", "scoring"]},
                           "scoring": {"service": 0.020}})
    r = row(model, engine)
    assert r["stations.risk.W"] == pytest.approx(0.050)
    assert r["stations.gateway.W"] == pytest.approx(0.051)
    assert r["stations.scoring.throughput"] == pytest.approx(2 * r["stations.risk.throughput"])


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("on_timeout", ["cancel", "continue"])
def test_a_step_timeout_retries_then_fails_the_caller(on_timeout, engine):
    """acquirer takes 0.3 s but the step waits 0.1 s, three times (backoff 0.05 s, then 0.1 s):
    the caller fails after 0.003 + 3 * 0.1 + 0.15 s, timed out; the acquirer's work is withdrawn
    in service (cancel) or finished for nobody (continue)."""
    model = one_at_a_time({"gateway": {"service": 0.003, "workers": 1,
                                       "calls": [{"station": "acquirer", "timeout": 0.1,
                                                  "retry": {"attempts": 3, "base": 0.05}}]},
                           "acquirer": {"service": 0.3, "workers": 5, "on_timeout": on_timeout}})
    r = row(model, engine)
    assert r["streams.card.timed_out"] == r["streams.card.arrival_rate"] * 100
    assert r["streams.card.goodput"] == 0
    assert r["stations.gateway.S"] == pytest.approx(0.003 + 0.3 + 0.15)
    assert r["stations.gateway.error_rate"] == 1.0               # a failed call is the caller's error
    tries = 3 * r["stations.gateway.throughput"] * 100
    assert r["stations.acquirer.entry_rate"] * 100 == pytest.approx(tries, abs=3)
    assert r["stations.acquirer.cancelled"] == (pytest.approx(tries, abs=3) if on_timeout == "cancel" else 0)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_callee_that_rejects_fails_the_step_and_its_retry_can_succeed(engine):
    """Two clients send at once (at 0.5 s, once in the run); checks has one worker and no queue, so the second call is
    rejected while the first is served: with a step retry 20 ms later it succeeds, without
    one the second request fails, rejected."""
    def run(step: object) -> dict[str, float]:
        return row(scenario({"gateway": {"workers": 2, "service": {"dist": "uniform", "low": 0.001, "high": 0.0011},
                                         "calls": [step]},
                             "checks": {"workers": 1, "queue": 0, "service": 0.010}},
                            {"card": {"clients": 2, "think": 0.5}}, 1.0, 0.0, 1), engine)

    r = run({"station": "checks", "retry": {"attempts": 2, "base": 0.02, "backoff": "constant"}})
    assert r["stations.checks.rejected"] == 1 and r["streams.card.goodput"] == 2
    r = run("checks")
    assert r["streams.card.rejected"] == 1 and r["streams.card.goodput"] == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_a_client_timeout_while_held_withdraws_the_calls_with_cancel(engine):
    model = one_at_a_time({"gateway": {"service": 0.003, "on_timeout": "cancel", "calls": ["acquirer"]},
                           "acquirer": {"service": 0.3}}, timeout=0.1)
    r = row(model, engine)
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


@pytest.mark.slow
@pytest.mark.parametrize(("engine", "horizon", "detects"), [("simpy", 200.0, 0.06), ("fast", 1200.0, 0.03)])
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


G = {"dist": EXP, "mean": 0.003}
SAME_PATH = {
    "sequential": ({"gateway": {"workers": 8, "service": G, "calls": ["risk", "acquirer"]},
                    "risk": {"workers": 3, "service": {"dist": EXP, "mean": 0.01}},
                    "acquirer": {"workers": 10, "service": {"dist": EXP, "mean": 0.1}}},
                   {"card": {"rate": 60.0, "timeout": 1.0}}),
    # fraud rejects (queue 2), risk errs; any withdraws the slower call
    **{f"parallel-{join}": ({"gateway": {"workers": 6, "service": G,
                                         "calls": [{"parallel": ["fraud", "balance"], "join": join}, "risk"]},
                             "fraud": {"workers": 2, "queue": 2, "service": {"dist": EXP, "mean": 0.02}},
                             "balance": {"workers": 2, "service": {"dist": "gamma", "mean": 0.03, "cv": 0.5}},
                             "risk": {"workers": 3, "service": {"dist": EXP, "mean": 0.01}, "errors": 0.05}},
                            {"card": {"rate": 60.0, "timeout": 1.0}}) for join in ("all", "any")},
    # step timeouts withdraw or detach the acquirer's work; jittered step retries with a budget,
    # the client's own timeout and retries on top; the gateway errs before calling
    **{f"timeout-retry-{on}": ({"gateway": {"workers": 8, "queue": 5, "service": G, "errors": 0.02,
                                            "calls": [{"station": "acquirer", "timeout": 0.15,
                                                       "retry": {"attempts": 3, "base": 0.01, "jitter": "full",
                                                                 "budget": 0.2, "on": ["timeout", "rejected"]}}]},
                                "acquirer": {"workers": 4, "queue": 3, "on_timeout": on,
                                             "service": {"dist": "lognormal", "mean": 0.1, "cv": 1.0}}},
                               {"card": {"rate": 50.0, "timeout": 0.5, "retry": {"attempts": 2, "base": 0.05}}})
       for on in ("cancel", "continue")},
    # a called station calls in its turn (a parallel step with a timeout, then one call); the
    # client's timeout withdraws the whole tree under cancel
    **{f"nested-{on}": ({"gateway": {"workers": 5, "service": G, "on_timeout": on, "calls": ["risk"]},
                         "risk": {"workers": 3, "service": G, "on_timeout": on,
                                  "calls": [{"parallel": ["scoring", "ledger"], "join": "any", "timeout": 0.05},
                                            "scoring"]},
                         "scoring": {"workers": 4, "queue": 2, "on_timeout": on, "service": {"dist": EXP, "mean": 0.03}},
                         "ledger": {"workers": 2, "on_timeout": on, "service": {"dist": "uniform", "low": 0, "high": 0.08}}},
                        {"card": {"rate": 40.0, "timeout": 0.12}}) for on in ("cancel", "continue")},
    # a callee without waiting room rejects; the step retries at once (zero backoff)
    "rejecting": ({"gateway": {"workers": 6, "queue": 0, "service": G,
                               "calls": [{"station": "checks", "retry": {"attempts": 2, "base": 0.0,
                                                                         "backoff": "constant"}}]},
                   "checks": {"workers": 1, "queue": 0, "service": {"dist": EXP, "mean": 0.01}}},
                  {"card": {"rate": 80.0}}),
    # a caller that routes on to another caller; a closed population enters at the second
    "routed-closed": ({"gateway": {"workers": 6, "service": G, "calls": ["checks"], "next": {"after": 0.5, "done": 0.5}},
                       "checks": {"workers": 2, "queue": 1, "service": {"dist": EXP, "mean": 0.01}},
                       "after": {"service": 0.001, "calls": ["checks"]}},
                      {"card": {"rate": 80.0}, "closed": {"clients": 5, "think": {"dist": EXP, "mean": 0.1},
                                                          "enter": "after"}}),
}


@pytest.mark.parametrize("case", list(SAME_PATH))
def test_both_engines_run_the_same_sample_path(case):
    """Every metric of every replication equal to rounding: each random component draws from
    its own generator in the same order on both engines, so any difference in what calls do
    (an event out of order, a step decided otherwise, a call not withdrawn) shows."""
    stations, arrivals = SAME_PATH[case]
    model = scenario(stations, arrivals, 30.0, 3.0, 2)
    assert unsupported(model) is None
    simpy_rows = simulate(model, jobs=1, engine="simpy").rows
    fast_rows = simulate(model, jobs=1, engine="fast").rows
    for reference, compiled in zip(simpy_rows, fast_rows, strict=True):
        assert set(reference) == set(compiled)
        different = {k: (v, compiled[k]) for k, v in reference.items()
                     if v != pytest.approx(compiled[k], rel=1e-9, abs=1e-12, nan_ok=True)}
        assert not different, different


def test_the_compiled_engine_refuses_what_it_does_not_run():
    executor_caller = scenario({"gateway": {"executor": {"core": 2}, "service": G, "calls": ["risk"]},
                                "risk": {"service": G}}, {"card": {"rate": 1.0}}, 10.0, 0.0)
    assert "executor" in unsupported(executor_caller)
    with_instances = scenario({"gateway": {"service": G, "calls": ["risk"]},
                               "risk": {"service": G, "instances": 2}}, {"card": {"rate": 1.0}}, 10.0, 0.0)
    assert "instances" in unsupported(with_instances)


def test_preflight_counts_the_time_a_worker_is_held_on_calls():
    """2 workers held 1 s per call at 10/s cannot keep up: utilisation at least 10 × 1.001 / 2,
    although their own work is 1 ms; a step with a timeout may end sooner, so it counts nothing."""
    from paysim.preflight import stability_warnings, station_loads

    stations = {"gateway": {"workers": 2, "service": 0.001, "calls": ["acquirer"]},
                "acquirer": {"workers": 100, "service": 1.0}}
    model = scenario(stations, {"card": {"rate": 10.0}}, 60.0, 0.0)
    assert station_loads(model)["gateway"].utilization == pytest.approx(10 * 1.001 / 2)
    assert any("'gateway' is unstable" in line for line in stability_warnings(model))
    stations["gateway"]["calls"] = [{"station": "acquirer", "timeout": 2.0}]
    assert station_loads(scenario(stations, {"card": {"rate": 10.0}}, 60.0, 0.0))["gateway"].utilization == \
        pytest.approx(10 * 0.001 / 2)
