"""Whole-platform sizing (paysim size --all): a locally minimal answer, checked again here by
simulation; the analytic start kept when it holds; clean refusals; the same answer from the same seed."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from conftest import assert_one_line_error, invoke_cli

from paysim.platform_sizing import (
    FAILS,
    HOLDS,
    UNCLEAR,
    PlatformSizing,
    PlatformTrial,
    _configured,
    _search,
    size_platform,
    to_dict,
)
from paysim.preflight import station_loads
from paysim.runner import simulate
from paysim.scenario import load_scenario
from paysim.scenario.models import Cost
from paysim.sizing import _overloaded, judge, parse_objective
from paysim.stats import summarise

# a cheap gateway with a bounded queue in front of an expensive risk-scoring pool
PLATFORM = """\
horizon: 25s
warmup: 3s
replications: 4
seed: 11
arrivals: {card: {rate: 60/s, enter: gateway}}
stations:
  gateway: {workers: 1, queue: 20, service: {dist: exponential, mean: 12ms}, next: risk,
            cost: {per_worker_hour: 0.05}}
  risk: {workers: 1, service: {dist: exponential, mean: 50ms}, cost: {per_worker_hour: 0.5}}
"""


def test_answer_holds_and_no_single_worker_reduction_does(tmp_scenario, tmp_path):
    path = tmp_scenario(PLATFORM)
    out = tmp_path / "out"
    slos = ["p99<300ms", "failure_rate<1%"]
    result = invoke_cli("size", path, "--all", "--slo", slos[0], "--slo", slos[1], "-j", "1", "-q", "--json",
                        "--out", out)
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert json.loads((out / "platform.json").read_text()) == found
    assert (out / "platform.png").stat().st_size > 0 and len((out / "platform.csv").read_text().splitlines()) == \
        len(found["trials"]) + 1
    answer = found["answer"]
    assert found["locally_minimal"] and found["confidence_each"] == pytest.approx(0.975)   # Bonferroni over 2
    assert {t["phase"] for t in found["trials"]} >= {"start", "+1 gateway", "-1 risk"}   # raised, then trimmed
    # the search's own evidence: the answer holds, each reduction by one worker does not
    by_workers = {tuple(t["workers"].values()): t for t in found["trials"]}
    assert by_workers[tuple(answer.values())]["verdict"] == HOLDS
    for name, reduction in found["reductions"].items():
        assert answer[name] == 1 or reduction["verdict"] in (FAILS, UNCLEAR), (name, reduction)
    # and checked again here: the same configurations simulated with the same seed and judged anew
    scenario = load_scenario(path)
    objectives = [parse_objective(text) for text in slos]

    def holds(workers: dict[str, int]) -> bool:
        candidate = _configured(scenario, list(workers), tuple(workers.values()))
        if _overloaded(station_loads(candidate)):
            return False
        summary = summarise(simulate(candidate, jobs=1, engine="auto").rows, 0.975)
        return all(judge(summary, objective)[1] for objective in objectives)

    assert holds(answer)
    for name in answer:   # both simulated here: the start had 1 gateway worker, the trim took one from risk
        assert not holds({**answer, name: answer[name] - 1}), name


def test_analytic_start_that_holds_is_kept_and_a_fixed_station_is_said(tmp_scenario):
    # a generous target: the fewest workers that keep up already meet it; the two-instance
    # station and the pure delay are left alone and the output says so
    path = tmp_scenario(PLATFORM.replace("cost: {per_worker_hour: 0.5}}", "next: ledger}") +
                        "  ledger: {workers: 2, instances: 2, service: {dist: exponential, mean: 5ms}, next: audit}\n"
                        "  audit: {workers: unlimited, service: {dist: exponential, mean: 20ms}}\n")
    scenario = load_scenario(path)
    sizing = size_platform(scenario, [parse_objective("p99<3s")], jobs=1)
    assert sizing.answer == sizing.start == (1, 4)
    assert sizing.trials[0].phase == "start" and sizing.trials[0].holds
    assert not any(t.phase.startswith("+") or t.phase == "ceiling" for t in sizing.trials)
    assert sizing.fixed == {"ledger": "has 2 instances", "audit": "has unlimited workers (a pure delay)"}
    assert sizing.unpriced == ["risk"]
    assert sizing.reductions["gateway"] is None and not sizing.reductions["risk"].holds   # 3 risk: 100% busy


def test_impossible_slo_is_a_clear_error(tmp_scenario):
    # exponential service at 50 ms: a p99 below 100 ms is out of reach whatever the workers
    result = invoke_cli("size", tmp_scenario(PLATFORM), "--all", "--slo", "p99<100ms", "-j", "1", "-q")
    assert result.exit_code == 2, result.output
    assert ("p99<100ms does not hold with 95% confidence even with every sized station at its search limit"
            in result.stderr)
    assert "Traceback" not in result.output
    assert "ceiling" in result.stdout   # the evidence is printed before the error


def test_cap_on_trials_is_a_clear_error(tmp_scenario, tmp_path):
    # the start is unclear and the ceiling holds: a third configuration would be needed
    result = invoke_cli("size", tmp_scenario(PLATFORM), "--all", "--slo", "p99<300ms", "--max-trials", "2", "-j", "1",
                        "-q", "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "simulated 2 configurations (--max-trials) without showing one locally minimal" in result.stderr
    assert json.loads((tmp_path / "out" / "platform.json").read_text())["answer"] is None   # the evidence kept


@pytest.mark.parametrize("args, words", [
    (["--all", "--slo", "p98<1s"], ["unknown metric 'p98'"]),
    (["--all", "--station", "risk", "--slo", "p99<1s"], ["either --station NAME", "or --all"]),
    (["--slo", "p99<1s"], ["either --station NAME"]),
    (["--station", "risk", "--slo", "p99<1s", "--slo", "mean<1s"], ["one objective with --station"]),
    (["--station", "risk", "--slo", "p99<1s", "--max-trials", "5"], ["--max-trials: only with --all"]),
    (["--all", "--slo", "failure_rate<1%"], ["cannot bind on any station sized"]),
])
def test_malformed_requests_give_one_line(tmp_scenario, args, words):
    text = PLATFORM.replace("queue: 20, ", "") if "failure_rate<1%" in args else PLATFORM
    assert_one_line_error(invoke_cli("size", tmp_scenario(text), *args, "-q"), *words)


def test_same_seed_same_answer_on_any_jobs(tmp_scenario):
    scenario = load_scenario(tmp_scenario(PLATFORM))
    objective = [parse_objective("p99<300ms")]   # raised and trimmed: the whole path compared
    first = to_dict(size_platform(scenario, objective, jobs=1, replications=3))
    assert len(first["trials"]) > 2 and first["answer"] is not None
    assert to_dict(size_platform(scenario, objective, jobs=2, replications=3)) == first
    other = to_dict(size_platform(scenario, objective, jobs=1, replications=3, seed=scenario.seed + 1))
    assert other["trials"] != first["trials"]   # the seed reaches the simulations


def _synthetic(prices: dict[str, float], start: tuple[int, ...],
               delay: Callable[[tuple[int, ...]], float]) -> PlatformSizing:
    """The search alone on a known monotone metric (no simulation): each replication's mean delay is
    ``delay(workers)`` plus 0, 1, 2, 3 ms, so a configuration holds when delay < 1 s - 3.55 ms."""
    objective = parse_objective("mean<1s")
    sizing = PlatformSizing([objective], list(prices), start, {}, tuple(s + 40 for s in start),
                            {n: Cost(per_worker_hour=p) for n, p in prices.items()}, [], {}, 0.95)
    tried: dict[tuple[int, ...], PlatformTrial] = {}

    def evaluate(workers: tuple[int, ...], phase: str) -> PlatformTrial:
        if workers not in tried:
            values = tuple(delay(workers) + 0.001 * r for r in range(4))
            value, holds, _ = judge(summarise([{"system.W": v} for v in values]), objective)
            cost = sum(w * p for w, p in zip(workers, prices.values(), strict=True))
            tried[workers] = PlatformTrial(workers, cost, phase, (value,), HOLDS if holds else FAILS, "", (values,))
            sizing.trials.append(tried[workers])
        return tried[workers]

    _search(sizing, evaluate, loads_of=lambda workers: {})
    return sizing


HOLDS_BELOW = 1 - 0.0015 - 3.182446305 * 0.0012909944 / 2   # mean of the +0..3 ms and the t(3) half-width


def test_search_finds_the_cheapest_on_a_known_metric():
    # delay 1/cheap + 1/dear: neither alone can meet 1 s; a dear worker costs 50 cheap ones
    prices = {"cheap": 0.1, "dear": 5.0}
    sizing = _synthetic(prices, (1, 1), lambda w: 1 / w[0] + 1 / w[1])
    holding = [(c, d) for c in range(1, 42) for d in range(1, 42) if 1 / c + 1 / d < HOLDS_BELOW]
    cheapest = min(holding, key=lambda w: 0.1 * w[0] + 5.0 * w[1])
    assert sizing.answer == cheapest == (3, 2)
    assert sizing.locally_minimal and all(not t.holds for t in sizing.reductions.values())


def test_search_trims_what_the_start_did_not_need():
    # holds from 11 workers in all: the start (9, 9) is trimmed, first at 'a' (same price, by name)
    sizing = _synthetic({"a": 1.0, "b": 1.0}, (9, 9), lambda w: 0.1 * (20 - w[0] - w[1]))
    assert sizing.trials[0].holds and sizing.answer == (2, 9)
    assert sizing.locally_minimal and [t.workers for t in sizing.reductions.values()] == [(1, 9), (2, 8)]
