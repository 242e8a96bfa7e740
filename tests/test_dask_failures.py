"""A sweep on a Dask cluster that fails under it: no worker alive, the scheduler gone, a task
that kills its worker again and again. Each must end in one line with the --resume hint
(exit 2), never a hang or a traceback, and keep the points already written.

Clusters are slow to start, so these use few: in-process schedulers where a process is not
needed, one process-based worker where a worker must die.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paysim.cli import app

distributed = pytest.importorskip("distributed")

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
SWEEP = """\
sweep:
  scenario: {scenario}
  vary:
    arrivals.requests.rate: [100/s, 150/s, 200/s]
  replications: 2
  horizon: 2s
  warmup: 0s
"""


def sweep_file(tmp_path: Path) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP.format(scenario=SCENARIOS / "mmc.yaml"))
    return path


def one_line(result, *words: str) -> str:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def test_no_worker_alive_is_a_timeout_with_a_message(tmp_path, monkeypatch):
    monkeypatch.setattr("paysim.execution.Dask.NO_WORKER_S", 1.0)
    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster:
        result = CliRunner().invoke(app, ["sweep", str(sweep_file(tmp_path)), "--out", str(tmp_path / "out"),
                                          "--scheduler", cluster.scheduler_address, "-q", "--no-plots"])
    one_line(result, "no Dask worker is alive")


def test_workers_that_all_die_mid_sweep_end_it_with_the_resume_hint(tmp_path, monkeypatch):
    monkeypatch.setattr("paysim.execution.Dask.NO_WORKER_S", 1.0)
    from paysim import execution
    real = execution.Dask.__init__

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        def connect_then_lose_workers(self, *args, **kwargs):
            real(self, *args, **kwargs)
            cluster.scale(0)           # every worker leaves once the sweep has reached them

        monkeypatch.setattr(execution.Dask, "__init__", connect_then_lose_workers)
        result = CliRunner().invoke(app, ["sweep", str(sweep_file(tmp_path)), "--out", str(tmp_path / "out"),
                                          "--scheduler", cluster.scheduler_address, "-q", "--no-plots"])
    one_line(result, "no Dask worker has been alive", "--resume")


def test_losing_the_scheduler_is_one_line(tmp_path, monkeypatch):
    from paysim import execution
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
    real = execution.Dask.completed

    def completed_then_lose_scheduler(self):
        finished = real(self)
        if finished and cluster.status.name == "running":
            threading.Thread(target=cluster.close).start()    # the scheduler goes away mid-sweep
        return finished

    monkeypatch.setattr(execution.Dask, "completed", completed_then_lose_scheduler)
    try:
        result = CliRunner().invoke(app, ["sweep", str(sweep_file(tmp_path)), "--out", str(tmp_path / "out"),
                                          "--scheduler", cluster.scheduler_address, "-q", "--no-plots"])
    finally:
        cluster.close()
    line = one_line(result, "--resume")
    assert "scheduler" in line or "worker" in line


def _die(*args, **kwargs):
    os._exit(1)


def test_a_task_that_kills_its_worker_is_one_line(tmp_path, monkeypatch):
    import dask
    monkeypatch.setattr("paysim.sweep.replicate_with_series", _die)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                     dashboard_address=None) as cluster:
        result = CliRunner().invoke(app, ["sweep", str(sweep_file(tmp_path)), "--out", str(tmp_path / "out"),
                                          "--scheduler", cluster.scheduler_address, "-q", "--no-plots"])
    one_line(result, "killed every Dask worker", "--resume")
