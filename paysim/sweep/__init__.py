"""Parameter sweeps: a grid of scenario variants, each run with its replications, one results row per point.

``load_sweep`` reads and checks a sweep file (``grid``); ``run_sweep`` runs the points
not yet in the output directory on this process, a local pool or a Dask cluster
(``execution``) and appends each finished point to results.csv (``storage``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from paysim import budget
from paysim.report import public_metrics
from paysim.runner import RunResult, choose_engine, default_jobs
from paysim.preflight import expected_arrivals, station_loads
from paysim.stats import Estimate
from paysim.sweep.execution import backend, execute
from paysim.sweep.grid import Parameter, Point, Sweep, cell_text, is_sweep_file, load_sweep, numeric
from paysim.sweep.storage import RESULTS, locked, prepare, read_results, write_parquet

__all__ = ["Parameter", "Point", "Sweep", "SweepRun", "cell_text", "is_sweep_file", "load_sweep", "numeric",
           "read_results", "run_sweep", "sweep_work", "unstable_points"]

INLINE_ARRIVALS = 200_000   # below this much SimPy work in all, starting processes costs more than it saves


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
    events, at_once = 0.0, max(1, min(jobs, len(sweep.points) * sweep.replications))
    for point in sweep.points:
        events += budget.check(point.scenario, f"{sweep.file}: point {point.index} ({point.label()})",
                               sweep.replications, jobs, at_once)
    if not events < budget.MAX_EVENTS:
        raise budget.BudgetError(f"{sweep.file}: the sweep would process about {events:.3g} events over "
                                 f"{len(sweep.points)} points, more than can finish; shorten the horizon or the grid")


def run_sweep(sweep: Sweep, directory: str | Path, *, jobs: int | None = None, scheduler: str | None = None,
              resume: bool = False, engine: str = "auto", on_replication: Callable[[int, int], None] | None = None,
              on_point: Callable[[Point, dict[str, Estimate]], None] | None = None,
              on_start: Callable[[list[Point]], None] | None = None) -> SweepRun:
    """Run the sweep's points that results.csv in ``directory`` does not hold yet.

    Each point runs on ``engine`` (auto, simpy or fast; auto picks per point, as
    ``paysim run`` does). Without ``resume`` a non-empty results.csv is refused.
    ``on_start`` gets the points about to run, ``on_replication`` (point, replication) as
    each replication finishes and ``on_point`` (point, metrics) after the point's row is on disk.
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

        def finished(point: Point, rows: list[dict[str, float]], wall_s: float) -> None:
            result = RunResult(point.scenario, point.seed, sweep.replications, engines[point.index], wall_s, rows)
            metrics = _scoped(public_metrics(result))
            results.append(point.index, point.params, metrics)
            outcome.ran.append(point.index)
            if any(check.verdict == "does not hold" for checks in result.little.values() for check in checks):
                outcome.little_fails.append(point.index)
            if on_point:
                on_point(point, metrics)

        try:
            if todo:
                tasks = len(todo) * sweep.replications
                compiled = all(engines[point.index] == "fast" for point in todo)
                small = scheduler is None and not compiled and sweep_work(sweep, todo) < INLINE_ARRIVALS
                runner = backend(1 if small else (jobs or default_jobs()), scheduler, tasks, compiled)
                execute(todo, sweep.replications, runner, engines, on_replication, finished)
        finally:
            results.close()
        parquet = write_parquet(directory)
    outcome.files = [directory / RESULTS, directory / "sweep.json"] + ([parquet] if parquet else [])
    return outcome
