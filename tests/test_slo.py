"""SLO verdicts a planner can act on: failures count against latency objectives, per-stream
objectives, a goodput objective, and no "met" without a confidence interval that shows it."""

from __future__ import annotations

import math

import pytest
from conftest import interval, run, scenario

from paysim.errors import ScenarioError
from paysim.scenario import scenario_from_data
from paysim.scenario.models import SLO
from paysim.sketch import RELATIVE_ERROR
from paysim.stats import Estimate, check_slo

EXP = {"dist": "exponential", "mean": 0.1}


def test_all_requests_percentile_is_the_success_quantile_at_p_over_one_minus_f():
    # M/M/1, λ=5, μ=10, and 20% of attempts fail after service independently of their sojourn,
    # which is Exp(μ−λ). Over all requests, failures counting as infinitely slow, the median is
    # the successes' 0.5/0.8 = 0.625 quantile: ln(1/0.375)/5 = 196 ms; p90 lies among the failures.
    model = scenario({"s": {"service": EXP, "errors": 0.2}}, {"a": {"rate": 5}}, horizon=2000, warmup=100)
    result = run(model)
    theory = math.log(1 / 0.375) / 5
    ci = interval(result, "system.latency_all.p50")   # 99.9% CI; detects a shift of a few percent
    assert ci.low * (1 - RELATIVE_ERROR) <= theory <= ci.high * (1 + RELATIVE_ERROR), (ci, theory)
    assert all(row["system.latency_all.p90"] == math.inf for row in result.rows)
    assert all(row["streams.a.latency_all.p90"] == math.inf for row in result.rows)


def test_without_failures_the_all_requests_percentile_is_the_successful_one():
    result = run(scenario({"s": {"service": EXP}}, {"a": {"rate": 5}}, horizon=200, warmup=10, replications=3))
    for row in result.rows:
        assert row["system.latency_all.p99"] == row["system.latency.p99"]


def test_p99_is_not_met_while_most_requests_are_rejected():
    # M/M/1/1 at 9 erlangs rejects 90% of requests; the few that get through are fast
    # (p99 of the successes ~46 ms, well under 100 ms), which the old verdict called "met".
    model = scenario({"s": {"service": {"dist": "exponential", "mean": 0.01}, "queue": 0}},
                     {"a": {"rate": 900}}, horizon=60, warmup=5, replications=4)
    model = model.model_copy(update={"slo": SLO(p99_latency=0.1, p50_latency=0.1, mean_latency=0.1)})
    result = run(model)
    assert result.summary["system.latency.p99"].high < 0.1          # the successes alone would pass
    verdicts = {c.objective: c for c in result.slo}
    assert verdicts["p99_latency"].verdict == "missed"
    assert verdicts["p50_latency"].verdict == "missed"              # a majority failed
    assert verdicts["mean_latency"].verdict == "missed" and "failed" in verdicts["mean_latency"].note


def _estimate(mean: float, half: float, n: int = 10) -> Estimate:
    return Estimate(mean, mean - half, mean + half, n)


def test_latency_met_is_withdrawn_when_the_failure_objective_is_missed():
    summary = {"system.latency_all.p99": _estimate(0.05, 0.001), "system.W": _estimate(0.02, 0.001),
               "system.failure_rate": _estimate(0.005, 0.0005)}
    checks = {c.objective: c.verdict for c in check_slo(summary, {"p99_latency": 0.1, "mean_latency": 0.1,
                                                                  "max_failure_rate": 0.001})}
    assert checks == {"p99_latency": "missed", "mean_latency": "missed", "max_failure_rate": "missed"}
    alone = check_slo(summary, {"p99_latency": 0.1, "mean_latency": 0.1})
    assert [c.verdict for c in alone] == ["met", "met"]
    gated = check_slo(summary, {"p99_latency": 0.1}, "system", failure_gate="missed")
    assert gated[0].verdict == "missed"


@pytest.mark.parametrize("value, target, verdict", [
    (_estimate(0.09, 0.02), 0.1, "uncertain"),        # the CI straddles the target
    (Estimate(0.05, math.nan, math.nan, 1), 0.1, "uncertain"),   # one replication: no CI, no "met"
    (Estimate(math.inf, 0.2, math.inf, 5), 0.1, "missed"),       # failures in some replications, the rest slow
    (Estimate(math.inf, 0.05, math.inf, 5), 0.1, "uncertain"),
])
def test_verdict_needs_the_whole_interval(value, target, verdict):
    summary = {"system.latency_all.p99": value, "system.failure_rate": _estimate(0.0, 0.0)}
    assert check_slo(summary, {"p99_latency": target})[0].verdict == verdict


def test_goodput_objective_is_a_lower_bound():
    summary = {"system.goodput": _estimate(410, 5), "system.failure_rate": _estimate(0.0, 0.0)}
    assert check_slo(summary, {"min_goodput": 400})[0].verdict == "met"
    assert check_slo(summary, {"min_goodput": 420})[0].verdict == "missed"
    assert check_slo(summary, {"min_goodput": 412})[0].verdict == "uncertain"


def _with_slo(slo: dict, where: str = "stream") -> dict:
    data = {"horizon": 60, "arrivals": {"card": {"rate": 5}}, "stations": {"s": {"service": EXP}}}
    if where == "stream":
        data["arrivals"]["card"]["slo"] = slo
    else:
        data["slo"] = slo
    return data


def test_per_stream_slo_is_judged_on_the_stream():
    data = _with_slo({"p99_latency": "5s", "min_goodput": "4/s"})
    data["arrivals"]["refunds"] = {"rate": 1, "slo": {"mean_latency": "1ms"}}
    data["horizon"], data["replications"] = 400, 4
    result = run(scenario_from_data(data, "test.yaml"))
    by_scope = {(c.scope, c.objective): c.verdict for c in result.slo}
    assert by_scope[("streams.card", "p99_latency")] == "met"
    assert by_scope[("streams.card", "min_goodput")] == "met"          # 5/s arrive, all succeed
    assert by_scope[("streams.refunds", "mean_latency")] == "missed"   # service alone is 100 ms


@pytest.mark.parametrize("where", ["stream", "system"])
@pytest.mark.parametrize("slo, key, message", [
    ({"min_goodput": "fast"}, "min_goodput", "expected a rate"),
    ({"min_goodput": 0}, "min_goodput", "greater than zero"),
    ({"min_goodput_rate": "4/s"}, "min_goodput_rate", "did you mean 'min_goodput'"),
    ({"p99_latency": "soon"}, "p99_latency", "expected a duration"),
])
def test_slo_keys_are_validated_strictly(where, slo, key, message):
    with pytest.raises(ScenarioError) as error:
        scenario_from_data(_with_slo(slo, where), "test.yaml")
    prefix = "arrivals.card.slo." if where == "stream" else "slo."
    assert prefix + key in str(error.value) and message in str(error.value), str(error.value)


def test_a_sweeps_slo_verdict_reads_infinite_percentiles_back_from_results_csv():
    from paysim.sweep.storage import estimates, metric_cells
    from paysim.sweep.summary import slo_verdict

    metrics = {"system.latency_all.p99": Estimate(math.inf, 0.3, math.inf, 5),
               "system.failure_rate": _estimate(0.02, 0.001)}
    cells = metric_cells(metrics)
    assert cells["system.latency_all.p99.mean"] == "inf"
    assert slo_verdict({"p99_latency": 0.2}, estimates(cells)) == "missed"
    assert slo_verdict({"p99_latency": 0.5}, estimates(cells)) == "uncertain"


def test_a_streams_failures_never_gate_another_streams_latency():
    # no system SLO: "impatient" misses its failure objective, which must not hold back "patient"
    data = {"horizon": 200, "warmup": 0, "replications": 4, "seed": 5,
            "arrivals": {"impatient": {"rate": 1, "timeout": "1ms", "slo": {"max_failure_rate": "1%"}},
                         "patient": {"rate": 1, "slo": {"p99_latency": "5s"}}},
            "stations": {"s": {"workers": 2, "service": EXP}}}
    result = run(scenario_from_data(data, "test.yaml"))
    by_scope = {(c.scope, c.objective): c.verdict for c in result.slo}
    assert by_scope[("streams.impatient", "max_failure_rate")] == "missed"
    assert by_scope[("streams.patient", "p99_latency")] == "met"
