"""Running a sweep's (point, replication) tasks: in this process, on local threads (the
compiled engine) or processes, or on Dask.

Each task is ``paysim.runner.replicate(scenario, seed, replication, engine=...)`` for
one point, a pure function of its arguments, so the rows (and everything computed from
them) are the same whichever backend, worker or order ran them. Tasks are handed out point by
point through a bounded window, so points tend to finish in grid order, a 1-point
sweep still keeps every core busy, and an interruption cancels little queued work.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from paysim.budget import per_replication
from paysim.errors import PaysimError, one_line
from paysim.runner import replicate
from paysim.sweep.grid import Point
from paysim.threads import DaemonThreads
from paysim.watchdog import exit_with_parent

ReplicationDone = Callable[[int, int], None]                 # (point, replication)
PointDone = Callable[[Point, list[dict[str, float]], float], None]   # (point, rows by replication, wall seconds)
POLL_S = 0.2


Key = tuple[int, int]    # (point index, replication)


class Inline:
    """Runs each task when it is submitted (one core, no processes to start)."""

    slots = 1

    def __init__(self) -> None:
        self.done: list[tuple[Key, dict[str, float]]] = []

    def submit(self, key: Key, scenario: Any, seed: int, engine: str) -> None:
        self.done.append((key, replicate(scenario, seed, key[1], engine=engine, max_in_flight=per_replication(1))))

    def completed(self) -> list[tuple[Key, dict[str, float]]]:
        done, self.done = self.done, []
        return done

    def close(self, interrupted: bool) -> None:
        pass


class LocalPool:
    """A pool of ``jobs`` spawned processes on this machine.

    A worker that dies (killed, out of memory) fails the sweep with a message instead of
    hanging it; an interruption cancels the queued tasks and stops the running ones.
    """

    def __init__(self, jobs: int) -> None:
        self.slots = jobs
        # spawn, not fork: the caller may have threads (progress bars)
        self.pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=exit_with_parent)
        self.futures: dict[Future, Key] = {}

    def submit(self, key: Key, scenario: Any, seed: int, engine: str) -> None:
        self.futures[self.pool.submit(replicate, scenario, seed, key[1], engine=engine,
                                      max_in_flight=per_replication(self.slots))] = key

    def completed(self) -> list[tuple[Key, dict[str, float]]]:
        done = wait(list(self.futures), timeout=POLL_S, return_when=FIRST_COMPLETED).done
        try:
            return [(self.futures.pop(future), future.result()) for future in done]
        except BrokenProcessPool:
            raise PaysimError("a worker process died (killed, or out of memory); the points already written are "
                              "kept: run again with --resume to finish the sweep") from None

    def close(self, interrupted: bool) -> None:
        if interrupted:
            self._stop_workers()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _stop_workers(self) -> None:
        """Stop replications still running, rather than let them finish for nobody."""
        if hasattr(self.pool, "terminate_workers"):  # Python 3.14+
            self.pool.terminate_workers()
            return
        processes = list((getattr(self.pool, "_processes", None) or {}).values())  # no public way before 3.14
        for process in processes:
            process.terminate()
        for process in processes:
            process.join()


class Threads:
    """``jobs`` threads in this process, for points the compiled engine runs (it releases
    the GIL): every core busy with no processes to start."""

    def __init__(self, jobs: int) -> None:
        self.slots = jobs
        self.threads = DaemonThreads(jobs)

    def submit(self, key: Key, scenario: Any, seed: int, engine: str) -> None:
        self.threads.submit(key, lambda: replicate(scenario, seed, key[1], engine=engine,
                                                   max_in_flight=per_replication(self.slots)))

    def completed(self) -> list[tuple[Key, dict[str, float]]]:
        return self.threads.completed(POLL_S)

    def close(self, interrupted: bool) -> None:
        self.threads.close()


class DaskCluster:
    """The workers of a Dask distributed cluster, reached through its scheduler's address.

    Every way the cluster can fail becomes one line with the ``--resume`` hint (finished
    points are on disk): no worker alive for ``NO_WORKER_S``, the scheduler gone, or a task
    that killed its worker again and again (``KilledWorker``).
    """

    NO_WORKER_S = 60.0    # how long to wait for a worker to (re)appear before giving up

    def __init__(self, address: str) -> None:
        try:
            import distributed
        except ImportError:
            raise PaysimError("--scheduler needs Dask: pip install 'paysim[dask]' (dask[distributed])") from None
        self.distributed, self.address = distributed, address
        try:
            self.client = distributed.Client(address, timeout="10s")
        except (OSError, TimeoutError, ValueError) as error:
            raise PaysimError(f"cannot reach the Dask scheduler at {address}: {one_line(str(error))}") from None
        self.futures: dict[Any, Key] = {}
        self.alone_since: float | None = None
        try:
            self.client.wait_for_workers(1, timeout=self.NO_WORKER_S)
        except (TimeoutError, distributed.TimeoutError):
            self.close(True)
            raise PaysimError(f"no Dask worker is alive at {address} (waited {self.NO_WORKER_S:g}s); "
                              "start workers and run the sweep again") from None
        self.slots = max(1, sum(self.client.nthreads().values()))

    def _lost(self, what: str) -> PaysimError:
        return PaysimError(f"{what}; the points already written are kept: run again with --resume to finish the sweep")

    def submit(self, key: Key, scenario: Any, seed: int, engine: str) -> None:
        try:
            self.futures[self.client.submit(replicate, scenario, seed, key[1], engine=engine,
                                            max_in_flight=per_replication(1), pure=False)] = key
        except Exception as error:  # noqa: BLE001 - the client raises whatever its connection raised
            raise self._lost(f"lost the Dask scheduler at {self.address} ({type(error).__name__})") from None

    def completed(self) -> list[tuple[Key, dict[str, float]]]:
        try:
            done = self.distributed.wait(list(self.futures), timeout=POLL_S, return_when="FIRST_COMPLETED").done
            finished = [(self.futures.pop(future), future.result()) for future in done]
        except TimeoutError:
            finished = []
        except self.distributed.KilledWorker:
            raise self._lost("a replication killed every Dask worker it ran on (out of memory, or a crash)") from None
        except PaysimError:
            raise
        except Exception as error:  # noqa: BLE001 - a cancelled future or a closed connection: the scheduler is gone
            if self.client.status == "running" and not isinstance(error, (OSError, self.distributed.CancelledError)):
                raise
            raise self._lost(f"lost the Dask scheduler at {self.address} ({type(error).__name__})") from None
        if not finished:
            self._check_workers()
        return finished

    def _check_workers(self) -> None:
        """A sweep with work queued and no worker alive for NO_WORKER_S stops with a message."""
        if self.client.status != "running":
            raise self._lost(f"lost the Dask scheduler at {self.address}")
        try:
            alive = bool(self.client.scheduler_info(n_workers=-1)["workers"]) if self.futures else True
        except TypeError:   # an older distributed: no n_workers argument
            alive = bool(self.client.scheduler_info()["workers"]) if self.futures else True
        except Exception as error:  # noqa: BLE001
            raise self._lost(f"lost the Dask scheduler at {self.address} ({type(error).__name__})") from None
        if alive:
            self.alone_since = None
            return
        now = time.monotonic()
        self.alone_since = self.alone_since or now
        if now - self.alone_since > self.NO_WORKER_S:
            raise self._lost(f"no Dask worker has been alive at {self.address} for {self.NO_WORKER_S:g}s")

    def close(self, interrupted: bool) -> None:
        with contextlib.suppress(Exception):   # a lost scheduler has nothing left to cancel
            if self.futures:
                self.client.cancel(list(self.futures))
        with contextlib.suppress(Exception):
            self.client.close(timeout=5)


Backend = Inline | Threads | LocalPool | DaskCluster


def backend(jobs: int, scheduler: str | None, tasks: int, compiled: bool = False) -> Backend:
    """Dask when a scheduler address is given, else ``jobs`` threads when every task runs
    on the compiled engine, else a pool of ``jobs`` processes (none for one job or one task)."""
    if scheduler:
        return DaskCluster(scheduler)
    jobs = max(1, min(jobs, tasks))
    return Inline() if jobs == 1 else Threads(jobs) if compiled else LocalPool(jobs)


def execute(points: Sequence[Point], replications: int, runner: Backend, engines: dict[int, str],
            on_replication: ReplicationDone | None = None, on_point: PointDone | None = None) -> None:
    """Run every replication of every point, each on ``engines[point.index]``; ``on_point``
    gets each point's rows as soon as the point is complete.

    On any exception (Ctrl-C included, or one raised by a callback) the queued tasks are
    cancelled and the pool is shut down before the exception goes on.
    """
    tasks = iter([(point, r) for point in points for r in range(replications)])
    by_index = {point.index: point for point in points}
    window, inflight = 2 * runner.slots, 0
    rows: dict[int, dict[int, dict[str, float]]] = {}
    started: dict[int, float] = {}
    interrupted = True
    try:
        while True:
            while inflight < window and (task := next(tasks, None)) is not None:
                point, r = task
                started.setdefault(point.index, time.perf_counter())
                runner.submit((point.index, r), point.scenario, point.seed, engines[point.index])
                inflight += 1
            if not inflight:
                break
            for (index, r), row in sorted(runner.completed(), key=lambda item: item[0]):
                inflight -= 1
                rows.setdefault(index, {})[r] = row
                if on_replication:
                    on_replication(index, r)
                if len(rows[index]) == replications:
                    done = rows.pop(index)
                    if on_point:
                        on_point(by_index[index], [done[i] for i in range(replications)],
                                 time.perf_counter() - started[index])
        interrupted = False
    finally:
        runner.close(interrupted)
