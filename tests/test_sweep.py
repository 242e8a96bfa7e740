"""Sweeps: the grid, results.csv point by point, executors that agree to the byte, resuming, refusals."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TEST_LEVEL
from scipy import stats as sps
from typer.testing import CliRunner

from paysim import analytic
from paysim.cli import app
from paysim.errors import PaysimError, ScenarioError
from paysim.runner import simulate
from paysim.stats import LEVEL
from paysim.sweep import load_sweep, run_sweep
from paysim.sweep.grid import point_seed
from paysim.units import parse_rate

SCENARIO = """\
horizon: 30s
warmup: 3s
replications: 6
seed: 20261125
arrivals: {requests: {rate: 400/s, enter: pool}}
stations: {pool: {workers: 10, service: {dist: exponential, mean: 20ms}}}
"""
SWEEP = """\
sweep:
  scenario: mmc.yaml
  vary:
    arrivals.requests.rate: {from: 200/s, to: 400/s, steps: 3}
    stations.pool.workers: [10, 12]
  replications: 6
"""
POINTS = 6


def write_sweep(directory: Path, sweep: str = SWEEP, scenario: str = SCENARIO) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "mmc.yaml").write_text(scenario, encoding="utf-8")
    (directory / "sweep.yaml").write_text(sweep, encoding="utf-8")
    return directory / "sweep.yaml"


def rows(directory: Path) -> list[dict[str, str]]:
    with (directory / "results.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def by_point(directory: Path) -> dict[str, dict[str, str]]:
    found = rows(directory)
    assert len({row["point"] for row in found}) == len(found), "a point was written twice"
    return {row["point"]: row for row in found}


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@contextlib.contextmanager
def _exclusive(path: Path):
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def reference(tmp_path_factory, worker_id) -> Path:
    """The uninterrupted sweep on a local pool of 2 processes, run once even when pytest-xdist splits this file."""
    root = tmp_path_factory.mktemp("reference") if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    out = root / "sweep-reference"
    with _exclusive(root / "sweep-reference.lock"):
        if not (out / "done").exists():
            run_sweep(load_sweep(write_sweep(root / "sweep-files")), out, jobs=2)
            (out / "done").touch()
    return out


def test_grid_rows_exactly_once(reference):
    found = rows(reference)
    # rows are appended as points finish, which on a busy pool need not be grid order
    assert sorted(int(row["point"]) for row in found) == list(range(POINTS))
    grid = {(row["arrivals.requests.rate"], row["stations.pool.workers"]) for row in found}
    assert grid == {(rate, workers) for rate in ("200/s", "300/s", "400/s") for workers in ("10", "12")}
    header = list(found[0])
    assert header[:3] == ["point", "arrivals.requests.rate", "stations.pool.workers"]
    assert {"stations.pool.Wq.mean", "stations.pool.Wq.ci95_low", "stations.pool.Wq.ci95_high"} <= set(header)
    written = json.loads((reference / "sweep.json").read_text())
    assert written["vary"]["arrivals.requests.rate"] == ["200/s", "300/s", "400/s"]
    assert len(written["points"]) == POINTS and written["replications"] == 6


def test_wait_rises_with_load_and_matches_erlang_c(reference):
    # Statistical, fixed seed: Erlang C's Wq must lie in the 99.9% Student-t interval over the
    # 6 replications at every point. results.csv holds the 95% interval, so its half-width is
    # rescaled by the ratio of the two t quantiles (same n, same standard error).
    widen = sps.t.ppf((1 + TEST_LEVEL) / 2, 5) / sps.t.ppf((1 + LEVEL) / 2, 5)
    means: dict[str, list[float]] = {}
    for row in rows(reference):
        rate, workers = parse_rate(row["arrivals.requests.rate"]), int(row["stations.pool.workers"])
        mean, low, high = (float(row[f"stations.pool.Wq.{s}"]) for s in ("mean", "ci95_low", "ci95_high"))
        half = (high - low) / 2 * widen
        theory = analytic.mmc(rate, 50.0, workers).Wq
        assert mean - half <= theory <= mean + half, f"point {row['point']}: Erlang C {theory:.6g} outside " \
                                                     f"[{mean - half:.6g}, {mean + half:.6g}]"
        means.setdefault(row["stations.pool.workers"], []).append(mean)
    for workers, series in means.items():
        assert series == sorted(series) and len(set(series)) == 3, f"Wq does not rise with load at {workers} workers"


def _metric_columns(directory: Path) -> dict[str, list[str]]:
    return {point: [row[c] for c in row if c.endswith((".mean", ".ci95_low", ".ci95_high"))]
            for point, row in by_point(directory).items()}


def test_dask_cluster_gives_identical_numbers(reference, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        run_sweep(load_sweep(write_sweep(tmp_path / "files")), tmp_path / "out", scheduler=cluster.scheduler_address)
    assert _metric_columns(tmp_path / "out") == _metric_columns(reference)


class Stop(Exception):
    pass


def test_interrupted_and_resumed_equals_uninterrupted(reference, tmp_path):
    plan = load_sweep(write_sweep(tmp_path / "files"))
    finished: list[int] = []

    def stop_after_two(point, metrics) -> None:
        finished.append(point.index)
        if len(finished) == 2:
            raise Stop

    with pytest.raises(Stop):
        run_sweep(plan, tmp_path / "out", jobs=1, on_point=stop_after_two)
    assert sorted(by_point(tmp_path / "out")) == ["0", "1"]
    with pytest.raises(PaysimError, match="--resume"):
        run_sweep(plan, tmp_path / "out", jobs=1)
    # a kill in the middle of a write leaves a last line without its newline: it is dropped and run again
    with (tmp_path / "out" / "results.csv").open("a") as handle:
        handle.write("2,300/s,10,0.12")
    outcome = run_sweep(plan, tmp_path / "out", jobs=1, resume=True)
    assert outcome.resumed == [0, 1] and sorted(outcome.ran) == [2, 3, 4, 5] and outcome.notes
    assert _metric_columns(tmp_path / "out") == _metric_columns(reference)
    again = run_sweep(plan, tmp_path / "out", resume=True)
    assert again.ran == [] and len(rows(tmp_path / "out")) == POINTS


def test_killed_process_loses_no_finished_point(reference, tmp_path):
    sweep_file = write_sweep(tmp_path / "files")
    out = tmp_path / "out"
    child = subprocess.Popen([sys.executable, "-m", "paysim", "sweep", str(sweep_file), "--out", str(out), "-j", "1",
                              "-q", "--no-plots"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and child.poll() is None:
            if (out / "results.csv").exists() and len((out / "results.csv").read_text().splitlines()) >= 2:
                break
            time.sleep(0.05)
        assert child.poll() is None, "the sweep ended before it could be killed"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    kept = by_point(out)
    assert 1 <= len(kept) < POINTS
    result = invoke("sweep", str(sweep_file), "--out", str(out), "--resume", "-q", "--no-plots", "-j", "1")
    assert result.exit_code == 0, result.output
    assert _metric_columns(out) == _metric_columns(reference)


def test_seed_depends_on_values_not_position_or_notation():
    assert point_seed(7, {"a": "6000/min", "b": 3}) == point_seed(7, {"b": 3, "a": "100/s"})
    assert point_seed(7, {"a": "100/s"}) != point_seed(7, {"a": "101/s"}) != point_seed(8, {"a": "101/s"})


def test_from_to_steps_keep_the_unit_of_from(tmp_path):
    sweep = SWEEP.replace("{from: 200/s, to: 400/s, steps: 3}", "{from: 6000/min, to: 300/s, steps: 4}") \
                 .replace("[10, 12]", "{from: 10, to: 16, steps: 4}")
    plan = load_sweep(write_sweep(tmp_path, sweep))
    assert [p.values for p in plan.parameters] == [("6000/min", "10000/min", "14000/min", "18000/min"), (10, 12, 14, 16)]
    assert plan.points[5].scenario.arrivals["requests"].rate == pytest.approx(10000 / 60)
    assert plan.points[5].scenario.stations["pool"].workers == 12


def test_resume_refuses_a_different_sweep(tmp_path):
    short = SCENARIO.replace("horizon: 30s", "horizon: 2s").replace("warmup: 3s", "warmup: 0.5s")
    tiny = SWEEP.replace("steps: 3", "steps: 1").replace("[10, 12]", "[10]").replace("replications: 6", "replications: 2")
    run_sweep(load_sweep(write_sweep(tmp_path / "a", tiny, short)), tmp_path / "out", jobs=1)
    other = load_sweep(write_sweep(tmp_path / "b", tiny.replace("replications: 2", "replications: 3"), short))
    with pytest.raises(PaysimError, match="different sweep.*replications"):
        run_sweep(other, tmp_path / "out", resume=True)
    refused = invoke("sweep", str(tmp_path / "a" / "sweep.yaml"), "--out", str(tmp_path / "out"), "-q")
    assert refused.exit_code == 2 and "already holds results" in refused.stderr and "Traceback" not in refused.output


BAD = [
    ("vary:\n    stations.gatway.workers: [10, 12]", "sweep.vary.stations.gatway.workers",
     "no station 'gatway' under stations"),
    ("vary:\n    stations.pool.wrkers: [10, 12]", "sweep.vary.stations.pool.wrkers", "did you mean 'workers'?"),
    ("vary:\n    arrivals.requests.rate: {from: 1/s, to: 5/s, steps: 0}", "sweep.vary.arrivals.requests.rate.steps",
     "expected a whole number"),
    ("vary:\n    arrivals.requests.rate: {from: 1/s, to: 5ms, steps: 2}", "sweep.vary.arrivals.requests.rate.to",
     "same kind as 'from'"),
    ("vary:\n    stations.pool.workers: [10, 0]", "sweep.vary.stations.pool.workers.1", "value 0"),
    ("vary:\n    stations.pool.workers: [10, 10]", "sweep.vary.stations.pool.workers", "10 repeats"),
    ("vary:\n    stations.pool.service.cv: [1]", "sweep.vary.stations.pool.service.cv", "has no key 'cv'"),
    ("vary:\n    seed: [1, 2]", "sweep.vary.seed", "cannot vary 'seed'"),
    ("vary: [1]\n  replicatons: 3", "sweep.replicatons", "did you mean 'replications'?"),
    ("vary: {}", "sweep.vary", "expected a mapping of dotted key paths"),
    ("vary:\n    stations.pool.workers: [10]\n  warmup: 2m", "sweep.warmup", "must be shorter than the horizon"),
]


@pytest.mark.parametrize("body, key, message", BAD)
def test_malformed_sweep_refused_cleanly(tmp_path, body, key, message):
    sweep = write_sweep(tmp_path, f"sweep:\n  scenario: mmc.yaml\n  {body}\n")
    for command in (["validate", str(sweep)], ["sweep", str(sweep), "--out", str(tmp_path / "out"), "-q"]):
        result = invoke(*command)
        assert result.exit_code == 2, result.output
        assert "sweep.yaml:" in result.stderr and f": {key}: " in result.stderr and message in result.stderr, result.stderr
        assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "results.csv").exists()


def test_problem_made_by_a_swept_value_names_the_sweep_key(tmp_path):
    routed = SCENARIO.replace("service: {dist: exponential, mean: 20ms}",
                              "service: {dist: exponential, mean: 20ms}, next: {done: 1.0}")
    sweep = write_sweep(tmp_path, "sweep:\n  scenario: mmc.yaml\n  vary:\n    stations.pool.next.done: [1.0, 0.5]\n", routed)
    with pytest.raises(ScenarioError) as caught:
        load_sweep(sweep)
    text = str(caught.value)
    assert "sweep.vary.stations.pool.next.done.1: value 0.5: routing probabilities must sum to 1" in text


def test_validate_accepts_the_shipped_sweeps():
    shipped = sorted(str(p) for p in (Path(__file__).parent.parent / "scenarios").glob("*-sweep.yaml"))
    assert shipped
    result = invoke("validate", *shipped)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("sweep of") == len(shipped)


def test_scenario_problem_names_the_scenario_and_the_point(tmp_path):
    sweep = write_sweep(tmp_path, "sweep:\n  scenario: mmc.yaml\n  vary:\n    stations.pool.workers: [10, 12]\n",
                        SCENARIO.replace("warmup: 3s", "warmup: 70s"))
    result = invoke("validate", str(sweep))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "mmc.yaml:2: warmup: must be shorter than the horizon" in result.stderr
    assert "(at sweep point 0: stations.pool.workers=10; and 1 other points)" in result.stderr


def test_parquet_copy_when_pyarrow_is_installed(reference):
    parquet = pytest.importorskip("pyarrow.parquet")
    table = parquet.read_table(reference / "results.parquet")
    assert table.num_rows == POINTS and "stations.pool.Wq.mean" in table.column_names


@pytest.mark.parametrize("command", ["sweep", "plot", "size"])
def test_commands_have_help_and_are_documented(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0 and "Usage" in result.stdout
    assert f"paysim {command} " in (Path(__file__).parent.parent / "README.md").read_text()


@pytest.mark.parametrize("path", sorted((Path(__file__).parent.parent / "scenarios").glob("*-sweep.yaml")),
                         ids=lambda path: path.stem)
def test_shipped_sweep_points_run(path):
    # the lightest and the heaviest point of each shipped sweep, on a short horizon
    plan = load_sweep(path)
    for point in (plan.points[0], plan.points[-1]):
        short = point.scenario.model_copy(update={"horizon": 20.0, "warmup": 2.0})
        result = simulate(short, seed=point.seed, replications=2, jobs=1)
        assert result.summary["system.throughput"].mean > 0


def test_auto_warmup_needs_a_sweep_warmup(tmp_path):
    auto = SCENARIO.replace("warmup: 3s", "warmup: auto")
    sweep = write_sweep(tmp_path, "sweep:\n  scenario: mmc.yaml\n  vary:\n    stations.pool.workers: [10, 12]\n", auto)
    with pytest.raises(ScenarioError, match="sweep.warmup: the scenario's 'warmup: auto' is not supported"):
        load_sweep(sweep)
    sweep.write_text(sweep.read_text() + "  warmup: 2s\n")
    assert all(point.scenario.warmup == 2.0 for point in load_sweep(sweep).points)


def test_engine_fast_refused_before_anything_is_written(tmp_path):
    # instances with a worker schedule: refused by the compiled engine (the combination is not checked there)
    refused = SCENARIO.replace("workers: 10,", "workers: 10, instances: 2, schedule: [{at: 10s, workers: 12}],")
    sweep = write_sweep(tmp_path / "files", SWEEP, refused)
    result = invoke("sweep", str(sweep), "--out", str(tmp_path / "out"), "--engine", "fast", "--no-plots", "-q")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--engine fast cannot run this scenario: stations.pool." in result.stderr
    assert "schedule needs the SimPy engine" in result.stderr
    assert not (tmp_path / "out" / "results.csv").exists()
