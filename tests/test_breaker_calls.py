"""A circuit breaker on a held call, in whole runs: the callee refuses everything for a while
(an outage), the breaker opens, probes while the outage lasts, and closes when it is over.

The expectations are worked out from the breaker's rules (paysim.engine.breaker) and the
scenario: 50 calls a second, a window of 20 calls of which at least 10 must be in, 50%
failures to open, open for 5 s, 3 probes. The outage's first 10 refused calls open it
(0.2 s in); every half-open spell in the outage ends at its 3rd probe (refused at once, a
few hundredths of a second); the first half-open spell after the outage closes it.
"""

from __future__ import annotations

import math

import pytest
from conftest import scenario

from paysim.runner import simulate

RATE = 50.0
OUTAGE = (60.0, 90.0)
BREAKER = {"failure_rate": "50%", "window": "20 calls", "min_calls": 10, "open_for": "5s", "half_open": 3}
CALL = "stations.gateway.calls.acquirer"


def _model(horizon: float, outage: tuple[float, float] = OUTAGE, step: dict | None = None,
           stream: dict | None = None):
    stations = {
        "gateway": {"workers": 400, "service": "1ms",
                    "calls": [{"station": "acquirer", "breaker": BREAKER, **(step or {})}]},
        "acquirer": {"workers": 40, "service": {"dist": "exponential", "mean": "20ms"},
                     "outages": [{"at": outage[0], "for": outage[1] - outage[0]}]},
    }
    return scenario(stations, {"payments": {"rate": RATE, **(stream or {})}}, horizon=horizon, warmup=0.0,
                    replications=1)


def _row(model, engine: str = "simpy") -> dict[str, float]:
    return simulate(model, seed=5, replications=1, engine=engine, jobs=1).rows[0]


def test_breaker_opens_in_an_outage_and_closes_after_it() -> None:
    horizon = 150.0
    row = _row(_model(horizon))
    open_s = row[f"{CALL}.breaker_open_fraction"] * horizon
    rejected, opened = row[f"{CALL}.breaker_rejected"], row[f"{CALL}.breaker_opened"]
    # open from about 60.2 s to the first half-open spell after 90 s (at most 5 s later); the
    # six or so half-open spells inside the outage last well under a second together
    assert 29.0 < open_s < 35.5
    assert 6 <= opened <= 7          # 30 s of outage / (5 s open + a short probe)
    assert open_s == pytest.approx(opened * 5.0)   # every spell open exactly open_for, over before the end
    # every call while open is refused: about RATE per second open (Poisson, 4 sd)
    assert abs(rejected - RATE * open_s) < 4 * math.sqrt(RATE * open_s) + 3 * opened
    # with no retry, each refused call fails its payment with reason breaker_open
    assert row["streams.payments.breaker_open"] == rejected
    # the outage's refusals reach the client until the breaker opens (10 failures push 10 of
    # the window's 20 successes out; a call answered meanwhile needs one more), then as the
    # 3 failed probes of each half-open spell but the last
    assert 10 + 3 * (opened - 1) <= row["streams.payments.rejected"] <= 12 + 3 * (opened - 1)
    assert row["stations.gateway.breaker_rejected"] == rejected
    assert row["stations.gateway.breaker_open_fraction"] == row[f"{CALL}.breaker_open_fraction"]
    # closed after the outage: a longer run of the same path refuses nothing more
    longer = _row(_model(250.0))
    assert longer[f"{CALL}.breaker_rejected"] == rejected
    assert longer[f"{CALL}.breaker_open_fraction"] * 250.0 == pytest.approx(open_s)


def test_no_failures_no_opening() -> None:
    row = _row(_model(60.0, outage=(100.0, 101.0)))
    assert row[f"{CALL}.breaker_open_fraction"] == 0.0
    assert row[f"{CALL}.breaker_rejected"] == row["streams.payments.breaker_open"] == 0.0


@pytest.mark.parametrize("where", ["stream", "step"])
def test_retry_on_breaker_open(where: str) -> None:
    # a 2 s outage opens the breaker for 5 s; a retry 6 s later finds it closed again
    retry = {"attempts": 2, "backoff": "constant", "base": "6s"}
    runs = {}
    for on in (["breaker_open"], ["rejected"]):
        extra = {"retry": {**retry, "on": on}}
        model = _model(100.0, outage=(60.0, 62.0), **({"stream": extra} if where == "stream" else {"step": extra}))
        runs[on[0]] = _row(model)
    refused = runs["rejected"]["streams.payments.breaker_open"]
    assert refused > 0.5 * RATE * 5.0                     # without a retry on it, ~5 s of payments fail
    assert runs["breaker_open"][f"{CALL}.breaker_rejected"] == pytest.approx(refused, abs=3 * math.sqrt(refused))
    assert runs["breaker_open"]["streams.payments.breaker_open"] == 0.0   # each was retried, and got through


def _same(a: float, b: float) -> bool:
    return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))


SLOW = [{"at": 20, "for": 15, "factor": 8}]
SAME_PATH = {
    # the outage above, with a time window and a retry of the step on breaker_open
    "outage-time-window": ({"breaker": {**BREAKER, "window": "3s"}, "retry": {"attempts": 2, "base": "1s",
                                                                             "on": ["breaker_open", "rejected"]}},
                           {}, {}, {}),
    # the callee slows down: the step's timeouts are the failures; its work is withdrawn (cancel)
    "step-timeouts-cancel": ({"timeout": "60ms"}, {"on_timeout": "cancel", "slowdowns": SLOW}, {}, {}),
    # ... or goes on detached (continue)
    "step-timeouts-continue": ({"timeout": "60ms"}, {"slowdowns": SLOW}, {}, {}),
    # the client gives up and its held work is withdrawn: a probe in flight (slow after the
    # outage) gives its permission back
    "client-timeout-cancel": ({"timeout": "80ms"}, {"slowdowns": [{"at": 40, "for": 15, "factor": 8}], "errors": "5%"},
                              {"on_timeout": "cancel"}, {"timeout": "70ms", "retry": {"attempts": 2, "base": "0.5s",
                                                                                        "on": ["timeout", "breaker_open"]}}),
}


@pytest.mark.parametrize("name", sorted(SAME_PATH))
def test_both_engines_follow_the_same_path(name: str) -> None:
    step, callee, caller, stream = SAME_PATH[name]
    data = {
        "gateway": {"workers": 400, "service": "1ms", **caller,
                    "calls": [{"station": "acquirer", "breaker": BREAKER, **step}]},
        "acquirer": {"workers": 40, "service": {"dist": "exponential", "mean": "20ms"},
                     "outages": [{"at": 30, "for": 15}], **callee},
    }
    model = scenario(data, {"payments": {"rate": RATE, **stream}}, horizon=60.0, warmup=5.0, replications=1)
    rows = [_row(model, engine) for engine in ("fast", "simpy")]
    assert rows[0].keys() == rows[1].keys()
    differ = {key: (a, b) for key, a in rows[0].items() if not _same(a, b := rows[1][key])}
    assert not differ, differ
    assert rows[0][f"{CALL}.breaker_opened"] >= 1
