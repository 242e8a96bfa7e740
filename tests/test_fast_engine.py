"""The compiled engine against the SimPy engine: every metric equal in distribution.

The engines use different random numbers, so their results are compared as two
independent samples: for each metric, the difference of the replication means must
lie within z·sqrt(se1² + se2²), z taken at a Bonferroni-corrected level (0.1% shared
across the scenario's metrics), with a fixed seed. Percentiles may differ by the
sketch's stated relative error on top.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import scenario
from scipy import special

from paysim.engine.compiled import recursion, unsupported
from paysim.runner import replicate_with_series, simulate
from paysim.sketch import RELATIVE_ERROR

EXP = {"dist": "exponential", "mean": 0.1}
CASES = {
    "mm1": ({"s": {"service": EXP}}, {"a": {"rate": 7}}),
    "mmc": ({"s": {"workers": 5, "service": EXP}}, {"a": {"rate": 40}}),
    "mmck": ({"s": {"workers": 3, "queue": 4, "service": EXP}}, {"a": {"rate": 35}}),
    "md1": ({"s": {"service": 0.1}}, {"a": {"rate": 8}}),
    "lognormal": ({"s": {"workers": 2, "service": {"dist": "lognormal", "median": 0.1, "p99": 0.8}}}, {"a": {"rate": 12}}),
    "gamma-uniform-tandem": ({"s": {"service": {"dist": "gamma", "mean": 0.05, "cv": 0.5}, "next": "t"},
                              "t": {"workers": 2, "service": {"dist": "uniform", "low": 0.05, "high": 0.15}}},
                             {"a": {"rate": 12}}),
    "feedback": ({"s": {"workers": 2, "service": EXP, "next": {"t": 0.3, "done": 0.7}},
                  "t": {"service": {"dist": "hyperexponential", "mean": 0.05, "cv": 2}, "next": {"s": 0.5, "done": 0.5}}},
                 {"a": {"rate": 10}}),
    "two-streams-deterministic": ({"s": {"workers": 2, "service": EXP}},
                                  {"a": {"rate": 8, "process": "deterministic"}, "b": {"rate": 6}}),
    "renewal-erlang": ({"s": {"workers": 2, "service": EXP}},
                       {"a": {"interarrival": {"dist": "erlang", "mean": 0.07, "k": 3}}}),
    "profile": ({"s": {"workers": 3, "service": EXP}},
                {"a": {"rate": 15, "profile": [{"at": 0, "x": 1}, {"at": 100, "x": 1.6}, {"at": 150, "x": 0.5}]}}),
    "errors": ({"s": {"workers": 2, "service": EXP, "errors": 0.1}}, {"a": {"rate": 12}}),
    "timeout-cancel": ({"s": {"service": EXP, "on_timeout": "cancel"}}, {"a": {"rate": 11, "timeout": 0.3}}),
    "timeout-continue": ({"s": {"workers": 2, "service": EXP}}, {"a": {"rate": 19, "timeout": 0.25}}),
    "bounded-abandon-two-streams": ({"s": {"workers": 2, "queue": 3, "on_timeout": "cancel",
                                           "service": {"dist": "hyperexponential", "mean": 0.1, "cv": 1.5}}},
                                     {"a": {"rate": 14, "timeout": 0.15}, "b": {"rate": 9, "timeout": 0.4}}),
}


def _compare(a, b) -> list[str]:
    names = [n for n in a.summary if n in b.summary and math.isfinite(a.summary[n].mean)
             and math.isfinite(b.summary[n].mean) and not n.endswith("in_system_at_end")]
    z = float(special.ndtri(1 - 0.001 / (2 * len(names))))
    problems = []
    for name in names:
        x = np.array([row[name] for row in a.rows])
        y = np.array([row[name] for row in b.rows])
        spread = z * math.sqrt(x.var(ddof=1) / len(x) + y.var(ddof=1) / len(y))
        if ".latency" in name:   # latency. and latency_all.
            spread += 2 * RELATIVE_ERROR * max(abs(x.mean()), abs(y.mean()))
        if abs(x.mean() - y.mean()) > spread + 1e-12:
            problems.append(f"{name}: simpy {x.mean():.6g} vs fast {y.mean():.6g} (allowed ±{spread:.3g})")
    return problems


def _kernels(case: str) -> list[str]:
    """The compiled engine's event loop runs every case; its recursion the one-station ones."""
    return ["events", "recursion"] if len(CASES[case][0]) == 1 else ["events"]


@pytest.mark.parametrize("case,kernel", [(case, kernel) for case in CASES for kernel in _kernels(case)])
def test_engines_agree(case, kernel, monkeypatch):
    stations, arrivals = CASES[case]
    model = scenario(stations, arrivals, horizon=300, warmup=20, replications=12)
    assert unsupported(model) is None
    assert recursion.fits(model) == (len(stations) == 1)
    if kernel == "events":
        monkeypatch.setattr(recursion, "fits", lambda _: False)
    reference = simulate(model, jobs=1, engine="simpy")
    fast = simulate(model, jobs=1, engine="fast")
    assert fast.engine == "fast" and reference.engine == "simpy"
    assert set(fast.rows[0]) == set(reference.rows[0])   # the same metrics, the same names
    assert _compare(reference, fast) == []
    assert all(check.verdict != "does not hold" for checks in fast.little.values() for check in checks)


@pytest.mark.parametrize("case", ["feedback", "bounded-abandon-two-streams"])   # the event loop, the recursion
def test_fast_engine_is_reproducible_on_one_thread_or_several(case):
    stations, arrivals = CASES[case]
    model = scenario(stations, arrivals, horizon=100, warmup=10, replications=3)
    first, second = simulate(model, jobs=1, engine="fast"), simulate(model, jobs=2, engine="fast")
    assert first.rows == second.rows


def test_auto_falls_back_and_says_why():
    # instances with a worker schedule: the compiled engine does not run the combination
    model = scenario({"s": {"service": EXP, "instances": 2, "schedule": [{"at": 20, "workers": 2}]}},
                     {"a": {"rate": 5}},
                     horizon=50, warmup=5, replications=2)
    result = simulate(model, jobs=1, engine="auto")
    assert result.engine == "simpy" and any("schedule" in note for note in result.notes)


@pytest.mark.parametrize("case", ["feedback", "bounded-abandon-two-streams"])   # the event loop, the recursion
@pytest.mark.parametrize("warmup", [0, 10])
def test_population_series_averages_to_the_runs_L(case, warmup):
    """The per-interval population the warm-up detection reads runs from time 0 across the
    warm-up; over the measurement window its intervals' mean is the run's time-average
    number in the system."""
    stations, arrivals = CASES[case]
    model = scenario(stations, arrivals, horizon=100, warmup=warmup, replications=1)
    row, series = replicate_with_series(model, 3, 0, interval_s=0.5, engine="fast")
    assert len(series) == 200 and series[-1]["t"] == pytest.approx(100)
    window = [r["system.L"] for r in series if r["t"] > warmup]
    assert np.mean(window) == pytest.approx(row["system.L"], rel=1e-9)


DETERMINISTIC = {   # no randomness at all: every engine must give the same numbers, ties included
    "D/D/1": ({"s": {"service": 0.1}}, {"a": {"rate": 5, "process": "deterministic"}}),
    "D/D/1/3 overloaded": ({"s": {"service": 0.3, "queue": 2}}, {"a": {"rate": 5, "process": "deterministic"}}),
}


@pytest.mark.parametrize("kernel", ["events", "recursion"])
@pytest.mark.parametrize("case", list(DETERMINISTIC))
def test_deterministic_queues_give_the_same_numbers_on_every_engine(case, kernel, monkeypatch):
    stations, arrivals = DETERMINISTIC[case]
    model = scenario(stations, arrivals, horizon=100, warmup=10, replications=2)
    reference = simulate(model, jobs=1, engine="simpy").rows[0]
    if kernel == "events":
        monkeypatch.setattr(recursion, "fits", lambda _: False)
    compiled = simulate(model, jobs=1, engine="fast").rows[0]
    for name in ("system.throughput", "system.W", "system.L", "stations.s.utilization", "stations.s.Lq",
                 "stations.s.rejection_rate", "system.in_system_at_end", "system.latency.p99"):
        assert compiled[name] == pytest.approx(reference[name], rel=1e-9, abs=1e-12), name
