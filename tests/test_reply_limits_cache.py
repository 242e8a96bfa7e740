"""``reply: true``, ``rate_limit`` and ``cache`` on both engines.

Same path: on the same seed the two engines draw the same random numbers in the same order
(a cache's hit and service from its own ``cache`` and ``cache-service`` generators; a token
bucket draws nothing), so every metric must agree to rounding. Exact checks: a settlement
step after the reply no longer times every payment out, and a deterministic stream through a
bucket loses exactly what an exact-arithmetic bucket loses. Theory: Poisson arrivals through
a bucket of one token pass at λr/(λ+r); a cached single server is an M/G/1 queue whose
service is the mixture of the cache's and its own (Pollaczek-Khinchine).
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from conftest import SEED, assert_holm, scenario
from test_engines_identical import _assert_same_path

from paysim import analytic
from paysim.network import Network
from paysim.runner import simulate
from paysim.theory import analyse

EXP = {"dist": "exponential", "mean": 0.05}

SAME_PATH = {
    # a reply before a slow, failing settlement; clients time out and retry on timeouts and errors
    "reply-before-settlement": (
        {"gateway": {"workers": 3, "service": EXP, "next": "acquirer", "errors": 0.02},
         "acquirer": {"workers": 4, "service": EXP, "reply": True, "on_timeout": "cancel",
                      "next": {"settlement": 0.8, "done": 0.2}},
         "settlement": {"workers": 16, "service": {"dist": "gamma", "mean": 0.4, "cv": 0.5}, "errors": 0.1,
                        "queue": 3}},
        {"card": {"rate": 25, "timeout": 0.3, "retry": {"attempts": 3, "base": 0.05, "jitter": "full",
                                                      "on": ["timeout", "error", "rejected"]}},
         "bank": {"clients": 8, "think": {"dist": "exponential", "mean": 0.2}, "enter": "acquirer"}}),
    # buckets on a stream and in front of a balanced station; retries on rate_limited
    "rate-limits": (
        {"gateway": {"workers": 2, "service": EXP, "next": "acquirer"},
         "acquirer": {"workers": 2, "instances": 3, "balance": "least_busy", "service": EXP,
                      "rate_limit": {"rate": 20, "burst": 3}}},
        {"card": {"rate": 35, "rate_limit": "32/s", "timeout": 1.0,
                  "retry": {"attempts": 2, "base": 0.1, "on": ["rate_limited", "timeout"]}},
         "batch": {"rate": 8, "process": "deterministic", "rate_limit": {"rate": 5, "burst": 1}}}),
    # a cache in front of parallel calls (a hit makes none), a call refused by a bucket, a cache in
    # front of a station whose work is withdrawn
    "cache-skips-calls": (
        {"risk": {"workers": 3, "service": EXP, "cache": {"hit": 0.6, "service": {"dist": "lognormal", "mean": 0.002,
                                                                                   "cv": 1.0}},
                  "parallel": ["fraud", "balance"], "join": "all", "next": "ledger"},
         "fraud": {"workers": 2, "service": EXP, "cache": {"hit": "30%", "service": 0.001}},
         "balance": {"workers": 2, "service": EXP, "errors": 0.05, "rate_limit": {"rate": 10, "burst": 2}},
         "ledger": {"workers": 2, "service": EXP, "on_timeout": "cancel", "cache": {"hit": 0.5, "service": 0.003}}},
        {"card": {"rate": 30, "timeout": 0.5, "retry": {"attempts": 2, "on": ["error", "timeout"]}}}),
    # held calls: a cache hit holds nobody; a call refused by the callee's bucket is retried as its
    # step says; the client has its answer when the gateway lets go, and the ledger runs behind
    "cache-and-limits-on-held-calls": (
        {"gateway": {"workers": 6, "queue": 4, "service": 0.003, "reply": True, "next": "ledger",
                     "cache": {"hit": 0.4, "service": 0.001},
                     "calls": ["risk", {"station": "acquirer", "timeout": 0.4,
                                        "retry": {"attempts": 2, "base": 0.02, "on": ["timeout", "rate_limited"]}}]},
         "risk": {"workers": 2, "service": EXP, "cache": {"hit": 0.5, "service": 0.002}},
         "acquirer": {"workers": 3, "service": EXP, "on_timeout": "cancel", "rate_limit": {"rate": 18, "burst": 4}},
         "ledger": {"workers": 1, "service": EXP, "errors": 0.05}},
        {"card": {"rate": 30, "timeout": 1.0}}),
}


@pytest.mark.parametrize("name", sorted(SAME_PATH))
def test_reply_limits_and_caches_follow_the_same_path(name):
    stations, arrivals = SAME_PATH[name]
    _assert_same_path(scenario(stations, arrivals, horizon=60.0, warmup=10.0, replications=1))


def _payments(reply: bool):
    """Deterministic services with ample workers: nobody queues, so a reply after the gateway
    (20 ms) and the acquirer (100 ms) comes after exactly 120 ms, and the settlement (5 s) is
    far beyond the clients' 1 s timeout."""
    return scenario({"gateway": {"workers": 50, "service": 0.02, "next": "acquirer"},
                     "acquirer": {"workers": 50, "service": 0.1, "reply": reply, "next": "settlement"},
                     "settlement": {"workers": 2000, "service": 5.0, "errors": 0.1}},
                    {"card": {"rate": 40, "timeout": 1.0, "retry": {"attempts": 3, "on": ["timeout", "error"]}}},
                    horizon=120.0, warmup=20.0, replications=3)


def test_a_settlement_after_the_reply_no_longer_times_payments_out():
    before = simulate(_payments(reply=False), seed=SEED, jobs=1, engine="fast").summary
    assert before["system.timeout_rate"].mean == 1.0      # every payment waits for its 5 s settlement
    result = simulate(_payments(reply=True), seed=SEED, jobs=1, engine="fast")
    summary = result.summary
    for metric in ("failure_rate", "timeout_rate", "retries"):
        assert summary[f"system.{metric}"].mean == 0.0
    assert summary["system.retry_amplification"].mean == 1.0   # no client retry re-runs the background work
    assert math.isclose(summary["system.W"].mean, 0.12, rel_tol=1e-9)   # the client's latency ends at the reply
    assert summary["system.latency.p999"].mean == pytest.approx(0.12, rel=0.01)   # (the sketch's resolution)
    for row in result.rows:
        # a settlement error comes after the reply: counted apart, never the client's failure
        assert row["system.background_failed"] == row["stations.settlement.errored"] > 0
        assert row["system.goodput"] == pytest.approx(row["system.arrival_rate"], rel=0.01)   # (window edges)
        # the system's population and W_all follow each attempt to the end of its route: L = λW_all
        assert row["system.L"] == pytest.approx(row["system.entry_rate"] * row["system.W_all"], rel=0.01)
        assert row["system.W_all"] == pytest.approx(5.12, rel=1e-9)
    assert all(check.holds for checks in result.little.values() for check in checks)


def _accepted_exactly(times: list[Fraction], rate: Fraction, burst: Fraction) -> int:
    """The requests a token bucket passes, in exact rational arithmetic."""
    tokens, last, passed = burst, Fraction(0), 0
    for t in times:
        tokens, last = min(burst, tokens + (t - last) * rate), t
        if tokens >= 1:
            tokens -= 1
            passed += 1
    return passed


@pytest.mark.parametrize("engine", ["fast", "simpy"])
def test_deterministic_arrivals_above_the_rate_lose_exactly_the_excess(engine):
    """1000 requests/s through a bucket of 250/s with 10 tokens: exact rational arithmetic, and
    the token bucket's bound (at most burst + rate x t pass by time t, and with a backlog no
    fewer than one less), give the number that passes; the engines' floating-point refills
    must not lose or gain a single request."""
    horizon = 20.0
    model = scenario({"s": {"workers": 1, "service": 0.0001}},
                     {"a": {"rate": 1000, "process": "deterministic", "rate_limit": {"rate": "250/s", "burst": 10}}},
                     horizon=horizon, warmup=0.0, replications=1)
    row = simulate(model, seed=SEED, jobs=1, engine=engine).rows[0]
    arrived = round(row["streams.a.arrival_rate"] * horizon)
    times = [Fraction(k, 1000) for k in range(1, arrived + 1)]
    passed = _accepted_exactly(times, Fraction(250), Fraction(10))
    assert 10 + 250 * times[-1] - 1 <= passed <= 10 + 250 * times[-1]
    assert row["streams.a.rate_limited"] == arrived - passed
    assert row["stations.s.arrival_rate"] * horizon == pytest.approx(passed, abs=1e-6)


def test_poisson_arrivals_through_one_token_pass_at_the_renewal_rate():
    """After a pass the bucket of one token is full again exactly 1/r later, and the next
    arrival passes: cycles of 1/r + 1/λ, so λr/(λ+r) pass (33.3/s of 100/s at r = 50/s, below
    both). 10 replications of 200 s estimate the refused share to about ±0.4% (99.9%): a
    bucket that refilled from the request instead of continuously, or kept a fraction of a
    token across a refusal wrongly, is off by far more."""
    lam, r = 100.0, 50.0
    model = scenario({"s": {"workers": 2, "service": 0.005, "rate_limit": {"rate": r, "burst": 1}}},
                     {"a": {"rate": lam}}, horizon=200.0, warmup=0.0, replications=10)
    result = simulate(model, jobs=1, engine="fast")
    assert_holm(result, {"stations.s.rate_limited_rate": (lam / (lam + r), 0.0),
                         "stations.s.throughput": (lam * r / (lam + r), 0.0),
                         "streams.a.rate_limited_rate": (lam / (lam + r), 0.0)}, alpha=0.001)


def test_a_cached_server_is_the_mg1_queue_of_the_mixture():
    """80% hits served in 1 ms (exponential), misses in 20 ms (exponential): E[S] = 4.8 ms,
    E[S²] = 161.6 ms², at 150/s an M/G/1 with ρ = 0.72 and Wq = 43.3 ms; the hit rate is
    binomial. 10 replications of 20 min (compiled) resolve Wq to about ±5% at 99.9%: a
    cache that ignored its hit rate (ρ = 3, unstable), served hits in the station's time or
    used the mixture's mean with exponential variability (Wq = 12.3 ms) fails by far."""
    hit, cache_mean, own_mean, lam = 0.8, 0.001, 0.020, 150.0
    model = scenario({"s": {"workers": 1, "service": {"dist": "exponential", "mean": own_mean},
                            "cache": {"hit": hit, "service": {"dist": "exponential", "mean": cache_mean}}}},
                     {"a": {"rate": lam}}, horizon=1200.0, warmup=60.0, replications=10)
    mean = hit * cache_mean + (1 - hit) * own_mean
    second = hit * 2 * cache_mean**2 + (1 - hit) * 2 * own_mean**2
    theory = analytic.mg1(lam, mean, second / mean**2 - 1)
    assert model.stations["s"].service_time.mean == pytest.approx(mean)   # what load estimates and theory read
    assert analyse(model).stations["s"].metrics["Wq"] == pytest.approx(theory.Wq)   # paysim analytic, --compare
    result = simulate(model, jobs=1, engine="fast")
    assert_holm(result, {"stations.s.Wq": (theory.Wq, 0.0), "stations.s.utilization": (lam * mean, 0.0),
                         "stations.s.cache_hit_rate": (hit, 0.0)}, alpha=0.001)


def test_theory_says_why_it_has_no_answer_past_a_bucket_or_a_reply():
    """What passes a token bucket is no Poisson flow: the limited station and what it feeds get
    no result; a reply part-way leaves the stations' results but no end-to-end latency."""
    stations = {"gateway": {"workers": 2, "service": EXP, "next": "acquirer"},
                "acquirer": {"workers": 2, "service": EXP, "next": "settlement"},
                "settlement": {"workers": 2, "service": EXP}}
    limited = analyse(scenario({**stations, "acquirer": {**stations["acquirer"], "rate_limit": "30/s"}},
                               {"card": {"rate": 20}}, horizon=60.0, warmup=0.0))
    assert limited.stations["gateway"].ok
    assert "rate limit" in limited.stations["acquirer"].reason
    assert "downstream of a rate limit" in limited.stations["settlement"].reason
    assert "rate limit" in analyse(scenario(stations, {"card": {"rate": 20, "rate_limit": "30/s"}},
                                            horizon=60.0, warmup=0.0)).stations["gateway"].reason
    replied = analyse(scenario({**stations, "acquirer": {**stations["acquirer"], "reply": True}},
                               {"card": {"rate": 20}}, horizon=60.0, warmup=0.0))
    assert all(replied.stations[name].ok for name in stations)
    assert "replies to the client" in replied.streams["card"].reason
    assert "replies to the client" in replied.system.reason
    closed = analyse(scenario({**stations, "acquirer": {**stations["acquirer"], "reply": True}},
                              {"card": {"clients": 5, "think": 0.1}}, horizon=60.0, warmup=0.0))
    assert "not fixed" in closed.stations["gateway"].reason   # no MVA: answered clients send again meanwhile


def test_only_a_cache_miss_makes_the_stations_calls():
    """paysim.network (visit ratios, the preflight's held time): a hit calls nobody."""
    model = scenario({"gateway": {"workers": 4, "service": EXP, "cache": {"hit": 0.75, "service": 0.001},
                                  "calls": ["bank"], "next": "api"},
                      "api": {"workers": 4, "service": EXP, "cache": {"hit": "50%", "service": 0.001},
                              "parallel": ["fraud"]},
                      "bank": {"workers": 4, "service": 0.2}, "fraud": {"workers": 4, "service": EXP}},
                     {"a": {"rate": 5}}, horizon=60.0, warmup=0.0)
    net = Network(model)
    assert net.calls("a")["bank"] == pytest.approx(0.25)
    assert net.calls("a")["fraud"] == pytest.approx(0.5)
    assert net.call_time["gateway"] == pytest.approx(0.25 * 0.2)
