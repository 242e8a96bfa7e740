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
    observer = observer_for(scenario)
    report = (lambda fraction: progress(replication, fraction)) if progress else None
    run_replication(scenario, observer, seed, replication, report)
    return observer.row()


def _replicate_in_worker(scenario: Scenario, seed: int, replication: int) -> dict[str, float]:
    queue = _progress_queue
    progress = (lambda rep, fraction: queue.put((rep, fraction))) if queue is not None else None
    return replicate(scenario, seed, replication, progress)


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _run_pool(scenario: Scenario, seed: int, count: int, jobs: int, progress: Progress | None) -> list[dict]:
    context = multiprocessing.get_context("spawn")   # no fork: the caller may have threads (progress bars)
    queue = context.Queue() if progress else None
    rows: list[dict] = [{}] * count
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(queue,)) as pool:
        futures = {pool.submit(_replicate_in_worker, scenario, seed, r): r for r in range(count)}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                while queue is not None and not queue.empty():
                    progress(*queue.get())
                for future in done:
                    rows[futures[future]] = future.result()
                    if progress:
                        progress(futures[future], 1.0)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return rows


def simulate(scenario: Scenario, *, seed: int | None = None, replications: int | None = None,
             jobs: int | None = None, progress: Progress | None = None) -> RunResult:
    """Run every replication of ``scenario`` and summarise them."""
    seed = scenario.seed if seed is None else seed
    count = replications or scenario.replications
    jobs = max(1, min(jobs or default_jobs(), count))
    started = time.perf_counter()
    if jobs == 1 or expected_arrivals(scenario) * count < INLINE_ARRIVALS:
        rows = []
        for r in range(count):
            rows.append(replicate(scenario, seed, r, progress))
            if progress:
                progress(r, 1.0)
    else:
        rows = _run_pool(scenario, seed, count, jobs, progress)
    return RunResult(scenario, seed, count, "simpy", time.perf_counter() - started, rows)
