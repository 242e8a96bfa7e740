"""One execution layer for run, sweep and size: the numbers depend on (scenario, seed) only,
never on the layout that ran them (one process, threads, spawned processes) nor on
whether a scenario ran as a run or as a point of a sweep.

Every comparison here is exact: replication r of a scenario draws from (seed, r) whoever
runs it, so any difference is a bug in how jobs are handed out or collected (a row
attributed to the wrong replication or point, a budget share that changes a result, a
series dropped), not noise.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paysim import execution
from paysim.cli import app
from paysim.report import public_metrics
from paysim.runner import replicate_with_series, simulate
from paysim.scenario import load_scenario
from paysim.sweep import load_sweep
from paysim.sweep.storage import metric_cells

SCENARIO = """\
horizon: 4s
warmup: 1s
replications: 3
seed: 20261203
arrivals: {requests: {rate: 300/s, enter: pool}}
stations: {pool: {workers: 8, service: {dist: exponential, mean: 20ms}}}
"""
SWEEP = """\
sweep:
  scenario: base.yaml
  vary:
    arrivals.requests.rate: [250/s, 330/s]
  replications: 3
"""


@pytest.fixture
def layouts(monkeypatch) -> list[str]:
    """The layout of every list of jobs run; any SimPy work starts processes (the threshold
    that keeps small runs in one process is lifted, so -j 2 really is spawned processes)."""
    seen: list[str] = []
    real = execution.layout

    def recording(*args, **kwargs) -> str:
        seen.append(real(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(execution, "INLINE_ARRIVALS", 0)
    monkeypatch.setattr(execution, "layout", recording)
    return seen


def _invoke(*args: object) -> str:
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result.stdout


def _run_json(path: Path, engine: str, jobs: int) -> dict:
    data = json.loads(_invoke("run", path, "-q", "--json", "--engine", engine, "-j", jobs))
    data["run"].pop("wall_s")
    return data


def _metric_rows(directory: Path) -> dict[str, dict[str, str]]:
    with (directory / "results.csv").open(newline="") as handle:
        return {row["point"]: {c: v for c, v in row.items() if c.endswith((".mean", ".ci95_low", ".ci95_high"))}
                for row in csv.DictReader(handle)}


ON_TWO = {"simpy": "processes", "fast": "threads"}


@pytest.mark.parametrize("engine", ["simpy", "fast"])
def test_a_run_gives_the_same_numbers_with_one_or_two_jobs(tmp_path, layouts, engine):
    path = tmp_path / "base.yaml"
    path.write_text(SCENARIO)
    alone = _run_json(path, engine, 1)
    assert layouts == ["inline"]
    assert _run_json(path, engine, 2) == alone
    assert layouts == ["inline", ON_TWO[engine]]
    assert alone["run"]["engine"] == engine and alone["run"]["replications"] == 3


@pytest.mark.parametrize("engine", ["simpy", "fast"])
def test_a_sweep_gives_the_same_numbers_with_one_or_two_jobs_and_a_point_equals_a_run(tmp_path, layouts, engine):
    (tmp_path / "base.yaml").write_text(SCENARIO)
    (tmp_path / "sweep.yaml").write_text(SWEEP)
    for jobs in (1, 2):
        _invoke("sweep", tmp_path / "sweep.yaml", "--out", tmp_path / f"j{jobs}", "-j", jobs, "--engine", engine,
                "-q", "--no-plots")
    swept = _metric_rows(tmp_path / "j2")
    assert swept == _metric_rows(tmp_path / "j1") and sorted(swept) == ["0", "1"]
    assert swept["0"] != swept["1"]
    for point in load_sweep(tmp_path / "sweep.yaml").points:   # the sweep ran on two, the run runs on one
        run = simulate(point.scenario, seed=point.seed, replications=3, jobs=1, engine=engine)
        assert metric_cells(public_metrics(run)) == swept[str(point.index)], f"point {point.index}"
    assert layouts == ["inline", ON_TWO[engine], "inline", "inline"]


def test_a_sweep_of_both_engines_gives_the_same_numbers_on_processes(tmp_path, layouts):
    """A point SimPy must run (a worker schedule behind two instances) beside one the compiled
    engine runs: the whole sweep goes to processes, each point still on its own engine."""
    (tmp_path / "base.yaml").write_text(SCENARIO.replace("workers: 8,", "workers: 8, schedule: [{at: 2s, workers: 9}],"))
    (tmp_path / "sweep.yaml").write_text(SWEEP.replace("arrivals.requests.rate: [250/s, 330/s]",
                                                       "stations.pool.instances: [1, 2]"))
    for jobs in (1, 2):
        _invoke("sweep", tmp_path / "sweep.yaml", "--out", tmp_path / f"j{jobs}", "-j", jobs, "-q", "--no-plots")
    assert layouts == ["inline", "processes"]
    swept = _metric_rows(tmp_path / "j2")
    assert swept == _metric_rows(tmp_path / "j1")
    for point, engine in zip(load_sweep(tmp_path / "sweep.yaml").points, ("fast", "simpy")):
        run = simulate(point.scenario, seed=point.seed, replications=3, jobs=1, engine="auto")
        assert run.engine == engine
        assert metric_cells(public_metrics(run)) == swept[str(point.index)], f"point {point.index}"


def test_a_session_keeps_its_pool_for_the_next_jobs_and_stops_it_once(tmp_path):
    """A sizing tries many worker counts, a --precision run adds replications: one pool for all."""
    path = tmp_path / "base.yaml"
    path.write_text(SCENARIO)
    scenario = load_scenario(path)
    jobs = [execution.Job(r, scenario, 1, r, "fast") for r in range(3)]
    with execution.Session(2) as session:
        first = session.run(jobs, replicate_with_series)
        pool = session.backends["threads"]
        again = session.run(jobs, replicate_with_series)
        assert session.backends["threads"] is pool
    assert first == again and not session.backends


def _die(*args, **kwargs):
    os._exit(1)


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_a_worker_process_that_dies_is_one_line(tmp_path, layouts, monkeypatch, command):
    """Killed or out of memory: one line and exit 2, never a hang or a traceback; a sweep
    says its finished points are kept and --resume finishes it."""
    (tmp_path / "base.yaml").write_text(SCENARIO)
    (tmp_path / "sweep.yaml").write_text(SWEEP)
    monkeypatch.setattr(f"paysim.{'runner' if command == 'run' else 'sweep'}.replicate_with_series", _die)
    args = ["run", tmp_path / "base.yaml"] if command == "run" else ["sweep", tmp_path / "sweep.yaml", "--out",
                                                                     tmp_path / "out", "--no-plots"]
    result = CliRunner().invoke(app, [str(arg) for arg in [*args, "-j", "2", "--engine", "simpy", "-q"]])
    assert layouts == ["processes"]
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "a worker process died" in errors[0], result.output
    assert ("--resume" in errors[0]) == (command == "sweep"), errors[0]
