"""The compiled engine's risk classification and parallel calls, against theory and the SimPy engine.

Both engines draw each random component (a stream's arrivals and amounts, a station's
service times, errors and routes, a stream's retry jitter) from the same generator, one
value at a time in the order the model asks for it. So wherever each draw is made alike
(exponential, lognormal, gamma, uniform) the two engines run the same path: checked
exactly, queueing and all. Where a draw is made otherwise (SimPy draws a hyperexponential's
phase choices in blocks), the runs part from that station's first draw on and agree in
distribution only: replication r on both engines still shares its arrivals and every other
generator, so each headline metric is compared on the paired differences, their mean within
the 99.9% Student-t bound Bonferroni-corrected over the metrics compared, with a fixed seed;
each case also asserts that a 3% bias in W, goodput and throughput would fail (twice the
bound over the mean: a true bias that large lands beyond the bound with probability > 97%).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_holm, scenario
from scipy import integrate, optimize, stats

from paysim.engine.compiled.driver import unsupported
from paysim.runner import simulate

EXP = "exponential"


def _exp(mean: float) -> dict:
    return {"dist": EXP, "mean": mean}


# ---------------------------------------------------------------- the same numbers on both engines

RISK = {"logistic": {"intercept": -3.0, "amount": 0.02}, "review_above": 0.5, "decline_above": 0.9}
ROUTED = {"approve": "acquirer", "review": "analysts", "decline": "done"}
DOWNSTREAM = {"acquirer": {"workers": 2, "service": 0.125}, "analysts": {"service": 0.3}}

OUTCOME_RATES = tuple(f"stations.{{scope}}.{outcome}_rate" for outcome in ("approve", "review", "decline"))
EXACT = {   # (stations, arrivals, metrics > 0 that show the feature at work): no randomness, or only
            # draws each engine makes from the same component's generator in the same order
    # amounts 10, 160 and 300 score approve, review and decline; gaps that never tie
    "classify-constant-amounts": (
        {"risk": {"service": 0.0625, "classify": RISK, "next": ROUTED}, **DOWNSTREAM},
        {"low": {"interarrival": 0.26, "amount": 10}, "mid": {"interarrival": 0.37, "amount": 160},
         "high": {"interarrival": 0.53, "amount": 300}},
        tuple(m.format(scope="risk") for m in OUTCOME_RATES)),
    # lognormal amounts: the stream's own generator, drawn once per request on both engines
    "classify-random-amounts": (
        {"risk": {"service": 0.0625, "classify": RISK, "next": ROUTED}, **DOWNSTREAM},
        {"card": {"interarrival": 0.21, "amount": {"dist": "lognormal", "median": 80, "p99": 900}}},
        tuple(m.format(scope="risk") for m in OUTCOME_RATES)),
    "fork-all": (
        {"front": {"service": 0.01, "parallel": ["b", "c"], "next": "tail"},
         "b": {"service": 0.05}, "c": {"service": 0.08}, "tail": {"service": 0.02}},
        {"pay": {"interarrival": 0.1}}, ("stations.b.goodput", "stations.c.goodput", "stations.tail.goodput")),
    # the slower call is withdrawn in service when the faster one answers
    "fork-any": (
        {"front": {"service": 0.01, "parallel": ["b", "c"], "join": "any"},
         "b": {"service": 0.05}, "c": {"service": 0.15}},
        {"pay": {"interarrival": 0.1}}, ("stations.b.goodput", "stations.c.cancelled")),
    # c has no queue: a call it refuses fails the transaction, whose call to b is withdrawn
    "fork-all-rejected-retried": (
        {"front": {"service": 0.01, "parallel": ["b", "c"]},
         "b": {"service": 0.05, "queue": 5}, "c": {"service": 0.15, "queue": 0}},
        {"pay": {"interarrival": 0.1, "retry": {"attempts": 3, "backoff": "constant", "base": 0.031,
                                                 "on": "rejected"}}},
        ("stations.c.rejected", "stations.b.cancelled", "stations.b.abandoned", "system.retries", "system.goodput")),
    # the client gives up while its calls run: they are withdrawn (on_timeout: cancel)
    "fork-timeout-cancel": (
        {"front": {"service": 0.01, "parallel": ["b", "c"], "on_timeout": "cancel"},
         "b": {"service": 0.05}, "c": {"service": _exp(0.08)}},
        {"pay": {"interarrival": 0.1, "timeout": 0.12,
                 "retry": {"attempts": 2, "backoff": "constant", "base": 0.043, "on": "timeout"}}},
        ("system.cancelled", "stations.c.cancelled", "system.retries", "system.goodput")),
    # errors drawn from each branch station's own generator; the join scores the amount
    "fork-errors-then-classify": (
        {"front": {"service": 0.01, "parallel": ["b", "c"], "join": "any", "classify": RISK, "next": ROUTED},
         "b": {"service": 0.05, "errors": 0.3}, "c": {"service": 0.09, "errors": 0.2}, **DOWNSTREAM},
        {"pay": {"interarrival": 0.23, "amount": {"dist": "uniform", "low": 0, "high": 400}}},
        ("system.errored", "stations.b.errored", "stations.c.cancelled",
         *(m.format(scope="front") for m in OUTCOME_RATES))),
    # a closed population draws an amount per request too; the approved ones fork (join any)
    "closed-clients-classify-fork": (
        {"risk": {"service": _exp(0.05), "classify": RISK, "next": ROUTED},
         "acquirer": {"workers": 2, "service": _exp(0.1), "parallel": ["b", "c"], "join": "any"},
         "b": {"service": _exp(0.05)}, "c": {"service": _exp(0.05)}, "analysts": {"service": 0.3}},
        {"users": {"clients": 6, "think": _exp(0.5), "amount": {"dist": "lognormal", "median": 80, "p99": 900}}},
        (*(m.format(scope="risk") for m in OUTCOME_RATES), "stations.b.cancelled", "stations.c.cancelled")),
}


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("case", list(EXACT))
def test_classification_and_parallel_calls_give_the_same_numbers_on_both_engines(case):
    stations, arrivals, exercised = EXACT[case]
    model = scenario(stations, arrivals, horizon=200, warmup=10.03, replications=1)
    assert unsupported(model) is None
    reference = simulate(model, jobs=1, engine="simpy").rows[0]
    compiled = simulate(model, jobs=1, engine="fast").rows[0]
    assert set(compiled) == set(reference)
    differ = {name: (reference[name], compiled[name]) for name in reference
              if not _same(reference[name], compiled[name])}
    assert not differ, f"simpy vs fast: {differ}"
    idle = [name for name in exercised if not reference[name] > 0]
    assert not idle, f"the case does not exercise what it is for: {idle}"


# ---------------------------------------------------------------- outcome shares against the logistic model

def _share_by_integration(density, support_end: float, intercept: float, coef: float,
                          review: float, decline: float) -> dict[str, float]:
    """P(outcome) = ∫ 1{outcome(a)} f(a) da, the score's thresholds located by root finding."""
    def score(a: float) -> float:
        return 1 / (1 + math.exp(-(intercept + coef * a)))

    review_at = optimize.brentq(lambda a: score(a) - review, 0, support_end)
    decline_at = optimize.brentq(lambda a: score(a) - decline, 0, support_end)

    def mass(low: float, high: float) -> float:
        return integrate.quad(density, low, high, limit=200, epsabs=1e-12)[0]

    return {"approve": mass(0, review_at), "review": mass(review_at, decline_at),
            "decline": mass(decline_at, np.inf)}


def test_outcome_shares_follow_the_logistic_model_over_the_amount_distribution():
    """Two streams, each scored at its own station: lognormal card amounts (median 40, p99 900)
    and gamma wire amounts (mean 150, cv 0.8). Amounts are independent of the queueing, so the
    pooled outcome counts are multinomial: each count's exact binomial test at 0.1%/6
    (Bonferroni over two stations × three outcomes). With about 80,000 decisions per station a
    share off by 0.5 percentage points (on shares of 3-75%) fails."""
    card, wire = (-3.0, 0.05, 0.5, 0.9), (-2.0, 0.01, 0.45, 0.8)
    stations = {
        "risk_card": {"workers": 20, "service": _exp(0.01), "classify": {
            "logistic": {"intercept": card[0], "amount": card[1]}, "review_above": card[2],
            "decline_above": card[3]}, "next": {"approve": "acquirer", "review": "analysts", "decline": "done"}},
        "risk_wire": {"workers": 20, "service": _exp(0.01), "classify": {
            "logistic": {"amount": wire[1], "intercept": wire[0]}, "review_above": wire[2],
            "decline_above": wire[3]}, "next": {"approve": "acquirer", "review": "analysts"}},
        "acquirer": {"workers": 40, "service": _exp(0.02)},
        "analysts": {"workers": 40, "service": _exp(0.05)},
    }
    arrivals = {"card": {"rate": 200, "enter": "risk_card",
                         "amount": {"dist": "lognormal", "median": 40, "p99": 900}},
                "wire": {"rate": 200, "enter": "risk_wire", "amount": {"dist": "gamma", "mean": 150, "cv": 0.8}}}
    model = scenario(stations, arrivals, horizon=101, warmup=1, replications=4)
    result = simulate(model, jobs=1, engine="fast")
    assert result.engine == "fast"
    sigma = (math.log(900) - math.log(40)) / stats.norm.ppf(0.99)
    lognormal = stats.lognorm(s=sigma, scale=40)
    shape = 1 / 0.8 ** 2
    gamma = stats.gamma(a=shape, scale=150 / shape)
    expected = {"risk_card": _share_by_integration(lognormal.pdf, 1e5, *card),
                "risk_wire": _share_by_integration(gamma.pdf, 1e5, *wire)}
    window = 100.0
    failures = []
    for station, shares in expected.items():
        decided = [round(row[f"stations.{station}.throughput"] * window) for row in result.rows]
        total = sum(decided)
        assert total > 75_000
        for outcome, share in shares.items():
            count = sum(round(row[f"stations.{station}.{outcome}_rate"] * n) for row, n in zip(result.rows, decided))
            p = stats.binomtest(count, total, share).pvalue
            if p < 0.001 / 6:
                failures.append(f"{station}.{outcome}: {count}/{total} = {count / total:.4f}, expected {share:.4f}")
    assert not failures, failures
    # outcomes without a route leave (wire's decline), routed ones arrive downstream
    approve = sum(expected[s]["approve"] for s in expected) * 200
    assert_holm(result, {"stations.acquirer.arrival_rate": (approve, 0.0)}, 0.001)


# ---------------------------------------------------------------- fork/join against the exact max and min

@pytest.mark.parametrize("join", ["all", "any"])
def test_fork_join_of_two_exponential_calls_takes_the_max_or_the_min(join):
    """Calls to b (Exp rate 10) and c (Exp rate 4) at once, after 1 ms at the front, on more
    workers than are ever busy (P(c's 100 workers all busy) < 1e-40 at 25 in service on average):
    the join waits E[max] = 1/10 + 1/4 − 1/14 (all) or E[min] = 1/14 (any) exactly. With
    join any the slower call is withdrawn in service: c loses (and is cancelled) with
    probability 10/14. 10 replications of 200 s at 100/s resolve W to about ±1% (99.9% CI),
    so a 3% bias fails; Holm over the three metrics at 0.1% family-wise."""
    a, b, lam = 10.0, 4.0, 100.0
    model = scenario({"front": {"workers": 50, "service": 0.001, "parallel": ["b", "c"], "join": join},
                      "b": {"workers": 100, "service": _exp(1 / a)},
                      "c": {"workers": 100, "service": _exp(1 / b)}},
                     {"pay": {"rate": lam}}, horizon=202, warmup=2, replications=10)
    result = simulate(model, jobs=1, engine="fast")
    assert result.engine == "fast"
    window = 200.0
    if join == "all":
        expected = {"system.W": (0.001 + 1 / a + 1 / b - 1 / (a + b), 0.0),
                    "stations.c.throughput": (lam, 0.0), "stations.b.throughput": (lam, 0.0)}
        assert all(row["stations.c.cancelled"] == 0 for row in result.rows)
    else:
        expected = {"system.W": (0.001 + 1 / (a + b), 0.0),
                    "stations.b.throughput": (lam * a / (a + b), 0.0),
                    "stations.c.cancelled": (lam * a / (a + b) * window, 0.0)}
    assert_holm(result, expected, 0.001)
    ci = stats.t.ppf(1 - 0.0005, 9) * np.std([row["system.W"] for row in result.rows], ddof=1) / math.sqrt(10)
    assert 2 * ci / expected["system.W"][0] < 0.03, "the run is too short to detect a 3% bias in W"
    assert all(row["system.failure_rate"] == 0 for row in result.rows)


# ---------------------------------------------------------------- equivalence in distribution with SimPy

HYPER = {"dist": "hyperexponential", "mean": 0.03, "cv": 1.3}
HEADLINE = ("system.goodput", "system.failure_rate", "system.W", "system.throughput", "system.latency.p99")
SIMILAR = {   # (stations, arrivals, metrics beside HEADLINE, replications): b's hyperexponential service
              # is drawn in another order by each engine (SimPy draws its phase choices in blocks), so
              # from b's first draws on the runs part: equal in distribution only
    "fork-all-queueing": (
        {"front": {"workers": 2, "service": _exp(0.02), "parallel": ["b", "c"], "next": {"tail": 0.5, "done": 0.5}},
         "b": {"service": {**HYPER, "mean": 0.02}}, "c": {"workers": 2, "service": _exp(0.05)},
         "tail": {"service": _exp(0.03)}},
        {"pay": {"rate": 12}}, ("stations.b.utilization", "stations.c.W", "stations.tail.W"), 24),
    "fork-any-lossy-retried": (
        {"front": {"workers": 2, "service": _exp(0.02), "parallel": ["b", "c"], "join": "any"},
         "b": {"service": HYPER, "errors": 0.2, "queue": 3}, "c": {"service": _exp(0.05), "queue": 2}},
        {"pay": {"rate": 12, "retry": {"attempts": 3, "backoff": "exponential", "base": 0.05, "max": 0.4,
                                       "jitter": "full", "on": ["error", "rejected"]}}},
        ("stations.b.utilization", "stations.c.cancelled", "system.retry_amplification"), 40),
    "fork-timeout-cancel": (
        {"front": {"workers": 2, "service": _exp(0.02), "parallel": ["b", "c"], "on_timeout": "cancel"},
         "b": {"service": {**HYPER, "mean": 0.02}}, "c": {"service": _exp(0.04)}},
        {"pay": {"rate": 12, "timeout": 0.3, "retry": {"attempts": 2, "backoff": "constant", "base": 0.1,
                                                        "on": "timeout"}}},
        ("stations.b.cancelled", "stations.c.utilization", "system.retry_amplification"), 40),
    "classify-network": (
        {"risk": {"workers": 2, "service": _exp(0.04), "classify": RISK, "next": ROUTED},
         "acquirer": {"workers": 3, "service": _exp(0.09)}, "analysts": {"service": HYPER}},
        {"card": {"rate": 30, "amount": {"dist": "lognormal", "median": 80, "p99": 900}}},
        ("stations.risk.review_rate", "stations.analysts.W", "stations.acquirer.utilization"), 16),
}
RESOLVED = ("system.W", "system.goodput", "system.throughput")   # a 3% bias in these must fail


def _paired_differences(reference, compiled, names: tuple[str, ...]) -> tuple[list[str], dict[str, float]]:
    """Metrics whose mean paired difference (replication r on both engines shares its
    arrivals and every generator but b's) lies beyond the Bonferroni-corrected 99.9%
    Student-t bound, and each metric's detectable relative difference (twice the bound
    over the mean: a true bias that large lands beyond the bound with probability > 97%)."""
    names = tuple(n for n in names if math.isfinite(reference.summary[n].mean))
    t = float(stats.t.ppf(1 - 0.001 / (2 * len(names)), len(reference.rows) - 1))
    problems, detectable = [], {}
    for name in names:
        d = np.array([y[name] - x[name] for x, y in zip(reference.rows, compiled.rows)])
        bound = t * d.std(ddof=1) / math.sqrt(d.size)
        if abs(d.mean()) > bound + 1e-12:
            problems.append(f"{name}: fast - simpy = {d.mean():.3g} (allowed ±{bound:.3g})")
        mean = reference.summary[name].mean
        if mean > 0:
            detectable[name] = 2 * bound / mean
    return problems, detectable


@pytest.mark.slow
@pytest.mark.parametrize("case", list(SIMILAR))
def test_compiled_calls_and_classification_match_simpy_in_distribution(case):
    stations, arrivals, extra, replications = SIMILAR[case]
    model = scenario(stations, arrivals, horizon=300, warmup=10, replications=replications)
    assert unsupported(model) is None
    reference = simulate(model, jobs=1, engine="simpy")
    compiled = simulate(model, jobs=1, engine="fast")
    assert compiled.engine == "fast"
    assert set(compiled.rows[0]) == set(reference.rows[0])
    assert any(x["system.W"] != y["system.W"] for x, y in zip(reference.rows, compiled.rows)), \
        "the runs did not part: this case tests nothing beyond the exact ones"
    problems, detectable = _paired_differences(reference, compiled, HEADLINE + extra)
    assert problems == []
    coarse = {name: f"{detectable[name]:.1%}" for name in RESOLVED if detectable[name] > 0.03}
    assert not coarse, f"the runs are too short to detect a 3% bias: {coarse}"
