"""Running a scenario's replications, serially or on local cores, into one result.

Replication r always uses the random streams derived from (seed, r), so the result is
the same whether the replications ran in this process or in a pool, in any order.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field

from paysim.engine import run_replication
from paysim.preflight import expected_arrivals
from paysim.observe import Observer, StationObserver, StreamObserver
from paysim.scenario import Scenario
from paysim.timeseries import SeriesRecorder
from paysim.stats import Estimate, LittleCheck, SloCheck, check_slo, littles_law, summarise

Progress = Callable[[int, float], None]   # (replication, fraction of it done)
INLINE_ARRIVALS = 200_000                  # below this much work a process pool costs more than it saves


@dataclass
class RunResult:
    scenario: Scenario
    seed: int
    replications: int
    engine: str
    wall_s: float
    rows: list[dict[str, float]]
    series: list[list[dict[str, float]]] = field(default_factory=list)   # per replication, if sampled
    summary: dict[str, Estimate] = field(init=False)
    little: dict[str, list[LittleCheck]] = field(init=False)
    slo: list[SloCheck] = field(init=False)

    def __post_init__(self) -> None:
        self.summary = summarise(self.rows)
        scopes = ["system", *(f"stations.{n}" for n in self.scenario.stations),
                  *(f"streams.{n}" for n in self.scenario.arrivals)]
        self.little = {scope: littles_law(self.rows, scope) for scope in scopes}
        self.slo = check_slo(self.summary, self.scenario.slo.model_dump()) if self.scenario.slo else []


def observer_for(scenario: Scenario) -> Observer:
    stations = {name: StationObserver(s.workers, s.service.mean) for name, s in scenario.stations.items()}
    return Observer(stations, {name: StreamObserver() for name in scenario.arrivals})


_progress_queue = None


def _init_worker(queue) -> None:
    global _progress_queue
    _progress_queue = queue


def replicate(scenario: Scenario, seed: int, replication: int, progress: Progress | None = None) -> dict[str, float]:
    """One replication's metrics row."""
    return replicate_with_series(scenario, seed, replication, progress)[0]


def replicate_with_series(scenario: Scenario, seed: int, replication: int, progress: Progress | None = None,
                          interval_s: float | None = None) -> tuple[dict[str, float], list[dict[str, float]]]:
    """One replication's metrics row, and its time series if ``interval_s`` is given."""
    observer = observer_for(scenario)
    report = (lambda fraction: progress(replication, fraction)) if progress else None
    recorder = SeriesRecorder(observer, interval_s) if interval_s else None
    sample = (interval_s, recorder.sample) if recorder else None
    run_replication(scenario, observer, seed, replication, report, sample=sample)
    return observer.row(), recorder.rows if recorder else []


def _replicate_in_worker(scenario: Scenario, seed: int, replication: int,
                         interval_s: float | None) -> tuple[dict[str, float], list[dict[str, float]]]:
    queue = _progress_queue
    progress = (lambda rep, fraction: queue.put((rep, fraction))) if queue is not None else None
    return replicate_with_series(scenario, seed, replication, progress, interval_s)


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


Outcome = tuple[dict[str, float], list[dict[str, float]]]


def _run_pool(scenario: Scenario, seed: int, count: int, jobs: int, progress: Progress | None,
              interval_s: float | None) -> list[Outcome]:
    context = multiprocessing.get_context("spawn")   # no fork: the caller may have threads (progress bars)
    queue = context.Queue() if progress else None
    outcomes: list[Outcome] = [({}, [])] * count
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(queue,)) as pool:
        futures = {pool.submit(_replicate_in_worker, scenario, seed, r, interval_s): r for r in range(count)}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                while queue is not None and not queue.empty():
                    progress(*queue.get())
                for future in done:
                    outcomes[futures[future]] = future.result()
                    if progress:
                        progress(futures[future], 1.0)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return outcomes


def simulate(scenario: Scenario, *, seed: int | None = None, replications: int | None = None,
             jobs: int | None = None, progress: Progress | None = None,
             series_interval: float | None = None) -> RunResult:
    """Run every replication of ``scenario`` and summarise them; with ``series_interval``
    also sample each replication's time series."""
    seed = scenario.seed if seed is None else seed
    count = replications or scenario.replications
    jobs = max(1, min(jobs or default_jobs(), count))
    started = time.perf_counter()
    if jobs == 1 or expected_arrivals(scenario) * count < INLINE_ARRIVALS:
        outcomes = []
        for r in range(count):
            outcomes.append(replicate_with_series(scenario, seed, r, progress, series_interval))
            if progress:
                progress(r, 1.0)
    else:
        outcomes = _run_pool(scenario, seed, count, jobs, progress, series_interval)
    rows = [row for row, _ in outcomes]
    series = [rows_ for _, rows_ in outcomes] if series_interval else []
    return RunResult(scenario, seed, count, "simpy", time.perf_counter() - started, rows, series)
