"""Parameter sweeps: a grid of scenario variants, each run with its replications, one results row per point.

``load_sweep`` reads and checks a sweep file (``grid``); ``run_sweep`` runs the points
not yet in the output directory (their replications are jobs of ``paysim.execution``, in
this process, on local threads or processes, or on a Dask cluster) and appends each
finished point to results.csv (``storage``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from paysim import budget
from paysim.execution import Job, Outcome, Session, WorkersLost, default_jobs
from paysim.preflight import expected_arrivals, station_loads
from paysim.report import public_metrics
from paysim.runner import RunResult, choose_engine, replicate_with_series
from paysim.stats import Estimate
from paysim.sweep.grid import Parameter, Point, Sweep, cell_text, is_sweep_file, load_sweep, numeric
from paysim.sweep.storage import RESULTS, locked, prepare, read_results, write_parquet

__all__ = ["Parameter", "Point", "Sweep", "SweepRun", "cell_text", "is_sweep_file", "load_sweep", "numeric",
           "read_results", "run_sweep", "sweep_work", "unstable_points"]


@dataclass
class SweepRun:
    """What one call of run_sweep did."""

    sweep: Sweep
    directory: Path
    ran: list[int] = field(default_factory=list)          # points simulated by this call, in finishing order
    resumed: list[int] = field(default_factory=list)      # points already in results.csv
    little_fails: list[int] = field(default_factory=list)  # points where Little's law did not hold
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def _scoped(metrics: dict[str, Estimate]) -> dict[str, Estimate]:
    """System metrics first, then stations, then streams (each in the order the run reported them)."""
    rank = {"system": 0, "stations": 1, "streams": 2}
    return dict(sorted(metrics.items(), key=lambda item: rank.get(item[0].split(".", 1)[0], 3)))


def unstable_points(sweep: Sweep) -> dict[str, list[int]]:
    """Per station, the points where it has an unbounded queue and open streams bring it a
    mean utilisation of 1 or more (as ``paysim run`` warns)."""
    found: dict[str, list[int]] = {}
    for point in sweep.points:
        for load in station_loads(point.scenario).values():
            if not load.bounded and load.open_utilization >= 1:   # closed populations cannot overload it
                found.setdefault(load.name, []).append(point.index)
    return found


def sweep_work(sweep: Sweep, points: list[Point] | None = None) -> float:
    """Arrivals the sweep's (remaining) points will simulate, over all replications."""
    return sum(expected_arrivals(p.scenario) for p in (sweep.points if points is None else points)) * sweep.replications


def check_budget(sweep: Sweep, jobs: int) -> None:
    """Refuse, before anything runs, a point that outgrows its share of the memory budget, or a
    sweep whose events over all points could not finish (paysim.budget)."""
    budget.check_jobs([(f"{sweep.file}: point {point.index} ({point.label()})", point.scenario)
                       for point in sweep.points], sweep.replications, jobs, f"{sweep.file}: the sweep")


def run_sweep(sweep: Sweep, directory: str | Path, *, jobs: int | None = None, scheduler: str | None = None,
              resume: bool = False, engine: str = "auto", progress: Callable[[tuple[int, int], float], None] | None = None,
              on_point: Callable[[Point, dict[str, Estimate]], None] | None = None,
              on_start: Callable[[list[Point]], None] | None = None) -> SweepRun:
    """Run the sweep's points that results.csv in ``directory`` does not hold yet.

    Each point runs on ``engine`` (auto, simpy or fast; auto picks per point, as
    ``paysim run`` does). Without ``resume`` a non-empty results.csv is refused.
    ``on_start`` gets the points about to run, ``progress`` ((point, replication), fraction
    done) as replications run and ``on_point`` (point, metrics) after the point's row is on disk.
    """
    directory = Path(directory)
    outcome = SweepRun(sweep, directory)
    # before anything is written: --engine fast on a point it cannot run is refused here
    engines = {point.index: choose_engine(point.scenario, engine)[0] for point in sweep.points}
    check_budget(sweep, jobs or default_jobs())
    with locked(directory):
        results, done, outcome.notes = prepare(directory, sweep, resume)
        outcome.resumed = sorted(done)
        todo = [point for point in sweep.points if point.index not in done]
        if todo:
            counts = Counter(engines[point.index] for point in todo)
            outcome.notes.append("engine: " + ", ".join(f"{name} for {n} point{'s' * (n > 1)}"
                                                         for name, n in sorted(counts.items())))
        if on_start:
            on_start(todo)
        began = time.perf_counter()
        rows: dict[int, dict[int, dict[str, float]]] = {}

        def finished(job: Job, replicated: Outcome) -> None:
            index, replication = job.key
            rows.setdefault(index, {})[replication] = replicated[0]
            if len(rows[index]) < sweep.replications:
                return
            point, by_replication = sweep.points[index], rows.pop(index)
            result = RunResult(point.scenario, point.seed, sweep.replications, engines[index],
                               time.perf_counter() - began,   # the sweep's time until this point was done
                               [by_replication[r] for r in range(sweep.replications)])
            metrics = _scoped(public_metrics(result))
            results.append(index, point.params, metrics)
            outcome.ran.append(index)
            if any(check.verdict == "does not hold" for checks in result.little.values() for check in checks):
                outcome.little_fails.append(index)
            if on_point:
                on_point(point, metrics)

        # a point is a run's jobs: (point, replication) in grid order, each point on its own engine
        jobs_todo = [Job((point.index, r), point.scenario, point.seed, r, engines[point.index])
                     for point in todo for r in range(sweep.replications)]
        try:
            with Session(jobs, scheduler) as session:
                session.run(jobs_todo, replicate_with_series, progress, finished)
        except WorkersLost as error:
            raise WorkersLost(f"{error}; the points already written are kept: run again with --resume to "
                              "finish the sweep") from None
        finally:
            results.close()
        parquet = write_parquet(directory)
    outcome.files = [directory / RESULTS, directory / "sweep.json"] + ([parquet] if parquet else [])
    return outcome
