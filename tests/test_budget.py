"""One memory and work budget per command (paysim.budget): scenarios that would exhaust memory
or never finish are refused before anything runs, with one line naming the key; the budget is
divided among the replications that run at once; sweeps check every point first."""

from __future__ import annotations

import pytest
from conftest import assert_one_line_error as refusal, invoke_cli as invoke

from paysim import budget
from paysim.runner import simulate
from paysim.scenario import scenario_from_data

HUGE = {
    "clients": ("arrivals:\n  users: {clients: 10000000, think: 1s}\nstations:\n  s: {workers: 4, service: 10ms}\n",
                "arrivals.users.clients"),
    "instances": ("arrivals:\n  users: {rate: 1/s}\nstations:\n  s: {instances: 10000000, service: 10ms}\n",
                  "stations.s.instances"),
    "batch-timer": (("arrivals:\n  users: {rate: 1/s}\nstations:\n"
                     "  s: {service: {per_batch: 1ms}, batch: {every: 1e-9s}}\n"), "events"),
}


@pytest.mark.parametrize("case", list(HUGE))
def test_a_scenario_beyond_the_budget_is_refused_before_running(tmp_path, monkeypatch, case):
    text, words = HUGE[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text("horizon: 10m\nwarmup: 0s\nreplications: 2\n" + text)
    monkeypatch.setattr("paysim.cli.simulate", lambda *a, **k: pytest.fail("simulated beyond the budget"))
    refusal(invoke("run", path, "-q", "-j", "1"), str(path), words)


def test_the_budget_is_divided_among_jobs(tmp_path):
    """3M clients fit one replication's budget (5M units) but not each of two at once (2.5M)."""
    path = tmp_path / "closed.yaml"
    path.write_text("horizon: 1s\nwarmup: 0s\nreplications: 2\narrivals:\n  users: {clients: 3000000, think: 1h}\n"
                    "stations:\n  s: {workers: 4, service: 10ms}\n")
    scenario = scenario_from_data({"horizon": "1s", "arrivals": {"u": {"clients": 3_000_000, "think": "1h"}},
                                   "stations": {"s": {"service": "10ms"}}}, "closed.yaml")
    budget.check(scenario, "closed.yaml", replications=2, jobs=1)          # one at a time: fits
    with pytest.raises(budget.BudgetError, match="for each of 2 replications at once"):
        budget.check(scenario, "closed.yaml", replications=2, jobs=2)
    refusal(invoke("run", path, "-q", "-j", "2"), "use fewer --jobs")


def test_runaway_cap_per_replication_is_the_jobs_share(monkeypatch):
    """The engines' in-flight cap is the command's budget divided by the replications at once."""
    seen = []
    from paysim import runner

    def record(scenario, observer, seed, replication, report=None, series_interval=None, max_in_flight=0):
        seen.append(max_in_flight)
        raise runner.PaysimError("stop here")

    monkeypatch.setattr(runner, "run_replication_fast", record)
    scenario = scenario_from_data({"horizon": "1s", "warmup": 0, "arrivals": {"a": {"rate": "1/s"}},
                                   "stations": {"s": {"service": "1ms"}}}, "s.yaml")
    for jobs in (1, 4):
        with pytest.raises(runner.PaysimError):
            simulate(scenario, jobs=jobs, replications=4, engine="fast")
    assert seen[0] == budget.MEMORY_UNITS and budget.MEMORY_UNITS // 4 in seen[1:]


def test_sweep_checks_every_point_before_starting(tmp_path):
    (tmp_path / "base.yaml").write_text("horizon: 1s\nwarmup: 0s\narrivals:\n  users: {clients: 10, think: 1s}\n"
                                        "stations:\n  s: {workers: 4, service: 10ms}\n")
    (tmp_path / "sweep.yaml").write_text("sweep:\n  scenario: base.yaml\n  replications: 2\n  vary:\n"
                                         "    arrivals.users.clients: [10, 6000000]\n")
    refusal(invoke("sweep", tmp_path / "sweep.yaml", "--out", tmp_path / "out", "-q", "-j", "1"),
            "point 1", "arrivals.users.clients")
    assert not (tmp_path / "out" / "results.csv").exists()     # no point ran


def test_millions_of_idle_workers_are_no_overload():
    """Above 5M workers, 1 request/s: the compiled engine must not count idle workers as in flight."""
    scenario = scenario_from_data({"horizon": "2s", "warmup": 0, "replications": 1,
                                   "arrivals": {"a": {"rate": "1/s"}},
                                   "stations": {"s": {"workers": 6_000_000, "service": "10ms"}}}, "wide.yaml")
    result = simulate(scenario, jobs=1, engine="fast")
    assert result.summary["stations.s.Wq"].mean == 0.0
