"""Backlogs and drain time (paysim.transient) on both engines.

A backlog's requests are placed at their station at time 0 by both engines in the same
order, drawing from the same generators, so one replication follows the same sample path on
both (checked to rounding). Drain time is then checked against theory: from n waiting with
every worker busy, the queue of an M/M/c station behaves as an M/M/1 queue served at rate
cμ (while anyone waits, all c workers are busy and each departure lets the next one in), so
it first empties after n busy periods of that queue: E = n/(cμ−λ) exactly, for c = 1 too.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import SEED, TEST_LEVEL, p_value, scenario
from rich.console import Console

from paysim import budget
from paysim.budget import BudgetError
from paysim.engine.compiled import unsupported
from paysim.errors import ScenarioError
from paysim.runner import simulate
from paysim.scenario import scenario_from_data
from paysim.stats import estimate
from paysim.sweep.summary import summary_table
from paysim.transient import drain_notes

EXP = {"dist": "exponential", "mean": 0.1}


def _same(a: float, b: float) -> bool:
    return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))


def _assert_same_path(model, replications: int = 1) -> list[dict[str, float]]:
    assert unsupported(model) is None
    runs = [simulate(model, seed=SEED, replications=replications, engine=engine, jobs=1).rows
            for engine in ("fast", "simpy")]
    for fast, simpy in zip(*runs):
        assert fast.keys() == simpy.keys()
        differ = {key: (a, simpy[key]) for key, a in fast.items() if not _same(a, simpy[key])}
        assert not differ, differ
    return runs[0]


def test_a_downstream_backlog_with_timeouts_retries_and_an_outage_follows_the_same_path():
    """The backlog's requests time out, retry through the entry, are withdrawn from the queue
    (on_timeout: cancel; LIFO, so the oldest wait longest) and wait out an outage at time 0; their amounts come from the
    backlog's own generator. Any difference in placing, counting or draining shows here."""
    model = scenario(
        {"gateway": {"workers": 2, "service": {"dist": "exponential", "mean": 0.02}, "next": "acquirer"},
         "acquirer": {"workers": 3, "queue": 400, "service": {"dist": "lognormal", "mean": 0.1, "cv": 1.2},
                      "on_timeout": "cancel", "discipline": "lifo", "backlog": {"waiting": 300, "in_service": "full"},
                      "outages": [{"at": 0, "for": 4, "mode": "hang"}]}},
        {"card": {"rate": 20, "timeout": 12, "amount": {"dist": "lognormal", "median": 40, "p99": 900},
                  "retry": {"attempts": 2, "backoff": "constant", "base": 0.5, "on": "timeout"}},
         "direct": {"rate": 3, "enter": "acquirer"}},
        horizon=120.0, warmup=0.0, replications=1)
    rows = _assert_same_path(model, replications=2)
    assert all(row["stations.acquirer.not_drained"] == 0 for row in rows)
    assert all(row["streams.card.retries"] > 0 and row["stations.acquirer.abandoned"] > 0 for row in rows)
    # the 303 requests of the backlog are the first stream's (the first in the file that reaches it)
    assert all(row["streams.card.arrival_rate"] * 120 > 303 + 20 * 120 * 0.8 for row in rows)


def test_a_backlog_of_another_stream_smaller_than_the_pool_drains_at_once():
    model = scenario({"pool": {"workers": 4, "service": EXP, "backlog": {"waiting": 3, "stream": "b"},
                               "discipline": "lifo"}},
                     {"a": {"rate": 5}, "b": {"rate": 5, "process": "deterministic"}}, horizon=20.0, warmup=0.0)
    rows = _assert_same_path(model)
    assert rows[0]["stations.pool.drain_time"] == 0.0
    assert rows[0]["streams.b.arrival_rate"] * 20 == 3 + 100     # the backlog counts as b's arrivals at 0


def test_a_backlog_at_a_risk_scoring_station_scores_amounts_from_its_own_generator():
    """The backlog's amounts decide its requests' risk outcomes: the outcome shares agree only if
    both engines draw them alike (and from the backlog's generator, not the stream's)."""
    model = scenario({"risk": {"workers": 2, "service": EXP, "backlog": 400,
                               "classify": {"logistic": {"intercept": -4, "amount": 0.02}, "review_above": 0.3,
                                            "decline_above": 0.7},
                               "next": {"approve": "done", "review": "done", "decline": "done"}}},
                     {"card": {"rate": 5, "amount": {"dist": "lognormal", "median": 100, "p99": 900}}},
                     horizon=60.0, warmup=0.0)
    (row,) = _assert_same_path(model)
    assert 0 < row["stations.risk.decline_rate"] < 1 and 0 < row["stations.risk.approve_rate"] < 1


@pytest.mark.slow
def test_drain_time_matches_n_over_c_mu_minus_lambda():
    """E[drain] = n/(cμ−λ) from n waiting with all c busy (exact for exponential service); with
    ``backlog: N`` the workers take c of them at once, so n = N − c. Three checks, Holm-corrected
    at family-wise level 1 − TEST_LEVEL, 60 replications each (the compiled engine, which the
    first replications show follows SimPy's path). The drain's relative spread is
    sqrt((cμ+λ)/(n(cμ−λ))): 21% (M/M/1, n = 200) and 12% (M/M/10, n = 600), so the 99.9%
    intervals are about ±9% and ±5.5% wide: a drain time off by 13% (M/M/1) or 8% (M/M/10) is
    caught, such as arrivals not counted against the drain (n/(cμ) is 20% shorter) or a drain
    timed from the wrong event (the station, not the queue, emptying adds little: not this test's)."""
    cases = {   # name: (workers, λ, backlog, expected drain)
        "mm1-full": (1, 8.0, {"waiting": 200, "in_service": "full"}, 200 / (10 - 8)),
        "mm10-full": (10, 80.0, {"waiting": 600, "in_service": "full"}, 600 / (100 - 80)),
        "mm10-waiting": (10, 80.0, {"waiting": 600}, (600 - 10) / (100 - 80)),
    }
    p_values = []
    for name, (workers, rate, backlog, expected) in cases.items():
        model = scenario({"pool": {"workers": workers, "service": {"dist": "exponential", "mean": 0.1},
                                   "backlog": backlog}}, {"req": {"rate": rate}},
                         horizon=2.5 * expected, warmup=0.0, replications=60)
        rows = simulate(model, engine="fast", jobs=1).rows
        reference = simulate(model, replications=2, engine="simpy", jobs=1).rows
        assert [r["stations.pool.drain_time"] for r in reference] == [r["stations.pool.drain_time"] for r in rows[:2]]
        assert sum(r["stations.pool.not_drained"] for r in rows) == 0, name
        times = [r["stations.pool.drain_time"] for r in rows]
        p_values.append((p_value(times, expected), name, expected, float(np.mean(times))))
    alpha = 1 - TEST_LEVEL
    for k, (p, name, expected, mean) in enumerate(sorted(p_values)):
        if p > alpha / (len(p_values) - k):
            break
        raise AssertionError(f"{name}: drain {mean:.4g}s against n/(cμ−λ) = {expected:.4g}s, p = {p:.2g}")


def test_a_queue_that_never_drains_is_counted_not_averaged():
    model = scenario({"pool": {"workers": 1, "service": EXP, "backlog": 200}}, {"req": {"rate": 12}},
                     horizon=60.0, warmup=0.0, replications=3)
    result = simulate(model, engine="simpy", jobs=1)
    assert all(math.isnan(r["stations.pool.drain_time"]) and r["stations.pool.not_drained"] == 1 for r in result.rows)
    assert math.isnan(result.summary["stations.pool.drain_time"].mean)
    assert any("did not drain within the horizon in any of the 3" in note for note in result.notes)


def test_partly_drained_runs_say_the_mean_is_over_those_that_drained():
    model = scenario({"pool": {"workers": 1, "service": EXP, "backlog": 5}}, {"req": {"rate": 1}},
                     horizon=60.0, warmup=0.0)
    rows = [{"stations.pool.drain_time": 10.0, "stations.pool.not_drained": 0.0},
            {"stations.pool.drain_time": math.nan, "stations.pool.not_drained": 1.0},
            {"stations.pool.drain_time": 14.0, "stations.pool.not_drained": 0.0}]
    (note,) = drain_notes(model, rows)
    assert "in 1 of 3 replications" in note and "the 2 that drained" in note
    assert estimate([r["stations.pool.drain_time"] for r in rows]).mean == 12.0


BASE = {"horizon": 60, "warmup": 0, "arrivals": {"a": {"rate": 5}},
        "stations": {"pool": {"workers": 2, "queue": 10, "service": "100ms", "backlog": 5}}}


def _problem(edit: dict) -> str:
    data = {**BASE, **{k: v for k, v in edit.items() if k != "pool"}}
    data["stations"] = {"pool": {**BASE["stations"]["pool"], **edit.get("pool", {})}, **edit.get("stations", {})}
    with pytest.raises(ScenarioError) as caught:
        scenario_from_data(data, "t.yaml")
    return str(caught.value)


@pytest.mark.parametrize(("edit", "words"), [
    ({"pool": {"backlog": 13}}, "t.yaml: stations.pool.backlog.waiting: 11 would wait once the 2 workers"),
    ({"pool": {"backlog": {"waiting": 11, "in_service": "full"}}}, "stations.pool.backlog.waiting: 11 would wait"),
    ({"pool": {"backlog": {"waiting": 5, "in_service": "half"}}}, "stations.pool.backlog.in_service"),
    ({"pool": {"backlog": -1}}, "stations.pool.backlog: expected a whole number from 0"),
    ({"pool": {"backlog": {"wating": 5}}}, "did you mean 'waiting'"),
    ({"warmup": "10s"}, "warmup: a warm-up (10s) would discard the transient that stations.pool.backlog starts"),
    ({"warmup": "auto"}, "warmup: a warm-up (auto)"),
    ({"pool": {"backlog": {"waiting": 5, "stream": "b"}}}, "stations.pool.backlog.stream: unknown arrival stream 'b'"),
    ({"pool": {"next": "tail"}, "stations": {"tail": {"service": "1ms", "backlog": {"waiting": 1, "stream": "c"}}},
      "arrivals": {"a": {"rate": 5}, "c": {"rate": 1, "enter": "tail"}}}, None),
    ({"stations": {"island": {"service": "1ms", "backlog": 3}}}, "stations.island.backlog: no arrival stream reaches"),
    ({"arrivals": {"a": {"clients": 3}}}, "is a closed population"),
    ({"pool": {"instances": 2}}, "stations.pool.backlog: a backlog is placed at a station with one instance"),
])
def test_malformed_backlogs_name_the_key(edit, words):
    if words is None:     # a stream that reaches the station, named: fine
        data = {**BASE, **{k: v for k, v in edit.items() if k != "pool"}}
        data["stations"] = {"pool": {**BASE["stations"]["pool"], **edit["pool"]}, **edit["stations"]}
        assert scenario_from_data(data, "t.yaml").stations["tail"].backlog.stream == "c"
        return
    assert words in _problem(edit)


def test_a_backlog_is_refused_at_an_executor():
    data = {**BASE, "stations": {"pool": {"executor": {"core": 2}, "service": "100ms", "backlog": 5}}}
    with pytest.raises(ScenarioError, match="stations.pool.backlog: a backlog is placed at a plain pool"):
        scenario_from_data(data, "t.yaml")


def test_a_backlog_counts_in_the_memory_budget():
    data = {**BASE, "stations": {"pool": {"workers": 2, "service": "100ms", "backlog": 6_000_000}}}
    with pytest.raises(BudgetError, match="stations.pool.backlog"):
        budget.check(scenario_from_data(data, "t.yaml"), "t.yaml", 1, 1)


def test_the_sweep_table_shows_each_backlog_drain_and_what_did_not_drain():
    description = {"vary": {"stations.acq.workers": [8, 9]}, "points": [{}, {}], "replications": 4,
                   "stations": ["gw", "acq"], "scenario_name": "outage"}
    rows = [{"point": str(i), "stations.acq.workers": str(k), "stations.acq.drain_time.mean": drain,
             "stations.acq.drain_time.ci95_low": "", "stations.acq.drain_time.ci95_high": "",
             "stations.acq.not_drained.mean": missed, "stations.acq.not_drained.ci95_low": "",
             "stations.acq.not_drained.ci95_high": ""}
            for i, (k, drain, missed) in enumerate([(8, "2000.0", "0.25"), (9, "1500.0", "0.0")])]
    console = Console(width=200, record=True)
    console.print(summary_table(description, rows))
    text = console.export_text()
    assert "acq drain" in text and "33.3 min (25% not drained)" in text and "25 min " in text
