"""Where replications run: one layer for ``run``, ``sweep`` and ``size`` (a run is a one-point sweep).

A ``Job`` is one replication of one scenario with its seed; a ``Session`` runs lists of
them in this process, on threads (compiled engine: it releases the GIL), on spawned
processes (SimPy engine) or on a Dask cluster. The task a job runs
(``paysim.runner.replicate_with_series``) is a pure function of (scenario, seed,
replication), so results do not depend on the layout, the worker or the order.

What is the same for every command lives here once: the choice of layout, the bounded
window of jobs handed out (so points of a sweep finish roughly in order and Ctrl-C cancels
little), progress reported from the calling thread only, each replication's share of the
memory budget (``paysim.budget``), Ctrl-C kept away from worker processes, and one pool
shutdown: pools are started when first needed, kept for the session's next list of jobs
(a run's warm-up pilot, its replications, those --precision adds; every worker count a
sizing tries) and stopped once, at once on Ctrl-C or an error.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from paysim.budget import per_replication
from paysim.errors import PaysimError, one_line
from paysim.preflight import expected_arrivals
from paysim.scenario import Scenario
from paysim.threads import DaemonThreads
from paysim.watchdog import exit_with_parent

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self is 3.11+; only the type checker reads it here

INLINE_ARRIVALS = 200_000   # below this much SimPy work in all, starting processes costs more than it saves
POLL_S = 0.2                # how often the calling thread looks for finished jobs and progress (and Ctrl-C)

Outcome = tuple[dict[str, float], list[dict[str, float]]]   # a replication's metrics row and its time series
ReplicationProgress = Callable[[int, float], None]           # (replication, fraction of it done)
Task = Callable[[Scenario, int, int, ReplicationProgress | None, float | None, str, int], Outcome]
Progress = Callable[[Any, float], None]                       # (job key, fraction of it done)


class WorkersLost(PaysimError):
    """The workers died under the jobs (killed, out of memory) or the cluster went away."""


@dataclass(frozen=True)
class Job:
    """One replication of one scenario; ``key`` names it in progress and results
    (the replication in a run, (point, replication) in a sweep)."""

    key: Any                             # hashable: the caller's name for the job
    scenario: Scenario
    seed: int
    replication: int
    engine: str                          # "fast" (compiled) or "simpy"
    interval_s: float | None = None      # time-series sampling interval, if one is wanted
    order: int = field(default=0, compare=False)   # position in the list it came in


Done = Callable[[Job, Outcome], None]


def default_jobs() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Backend(Protocol):
    def submit(self, job: Job, task: Task, at_once: int) -> None: ...
    def completed(self) -> list[tuple[Job, Outcome]]: ...
    def fractions(self) -> dict[Hashable, float]: ...
    def close(self, interrupted: bool) -> None: ...


class Inline:
    """Runs each job when it is submitted, in the calling thread."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.done: list[tuple[Job, Outcome]] = []

    def submit(self, job: Job, task: Task, at_once: int) -> None:
        progress = self.progress
        report = (lambda _, fraction: progress(job.key, fraction)) if progress else None
        self.done.append((job, task(job.scenario, job.seed, job.replication, report, job.interval_s, job.engine,
                                    per_replication(at_once))))

    def completed(self) -> list[tuple[Job, Outcome]]:
        done, self.done = self.done, []
        return done

    def fractions(self) -> dict[Hashable, float]:
        return {}

    def close(self, interrupted: bool) -> None:
        pass


class Threads:
    """Daemon threads in this process for the compiled engine; they only leave their
    fractions done, which the calling thread reports."""

    def __init__(self, workers: int) -> None:
        self.threads = DaemonThreads(workers)
        self.running: dict[Hashable, float] = {}

    def submit(self, job: Job, task: Task, at_once: int) -> None:
        def report(_: int, fraction: float) -> None:
            self.running[job.key] = fraction

        def run() -> Outcome:
            return task(job.scenario, job.seed, job.replication, report, job.interval_s, job.engine,
                        per_replication(at_once))
        self.threads.submit(job, run)

    def completed(self) -> list[tuple[Job, Outcome]]:
        done: list[tuple[Job, Outcome]] = self.threads.completed(timeout_s=POLL_S)  # type: ignore[assignment]
        for job, _ in done:
            self.running.pop(job.key, None)
        return done

    def fractions(self) -> dict[Hashable, float]:
        return self.running.copy()   # a copy: the threads add keys

    def close(self, interrupted: bool) -> None:
        self.threads.close()


_progress_queue: Any = None   # in a worker process: where its job's progress goes


def _init_worker(queue: Any) -> None:
    global _progress_queue
    _progress_queue = queue
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the parent's to handle
    exit_with_parent()


def _in_worker(task: Task, tag: int, scenario: Scenario, seed: int, replication: int, interval_s: float | None,
               engine: str, max_in_flight: int) -> Outcome:
    queue = _progress_queue
    report = (lambda _, fraction: queue.put((tag, fraction))) if queue is not None else None
    return task(scenario, seed, replication, report, interval_s, engine, max_in_flight)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Workers inherit the signal disposition at start: start them with Ctrl-C ignored, so
    one interrupted before its initializer runs does not print a traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Stop a pool at once (after Ctrl-C or an error): queued work is cancelled and the
    workers are terminated rather than waited for."""
    workers = list((getattr(pool, "_processes", None) or {}).values())  # no public handle before 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.join(timeout=5)


class Processes:
    """``workers`` spawned processes (no fork: the caller may have threads, such as progress bars).

    A worker that dies (killed, out of memory) is a WorkersLost error instead of a hang.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        context = multiprocessing.get_context("spawn")
        self.queue = context.Queue()
        self.pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(self.queue,))
        self.futures: dict[Future, tuple[int, Job]] = {}
        self.running: dict[int, Hashable] = {}   # tag -> key of each job in flight; tags are never reused
        self.submitted = 0

    def submit(self, job: Job, task: Task, at_once: int) -> None:
        # the pool starts a worker on each of the first submissions: those start with Ctrl-C ignored
        starting = _sigint_ignored() if self.submitted < self.workers else contextlib.nullcontext()
        tag, self.submitted = self.submitted, self.submitted + 1
        with starting:
            future = self.pool.submit(_in_worker, task, tag, job.scenario, job.seed, job.replication,
                                      job.interval_s, job.engine, per_replication(at_once))
        self.futures[future], self.running[tag] = (tag, job), job.key

    def completed(self) -> list[tuple[Job, Outcome]]:
        finished = []
        try:
            for future in wait(list(self.futures), timeout=POLL_S, return_when=FIRST_COMPLETED).done:
                tag, job = self.futures.pop(future)
                del self.running[tag]
                finished.append((job, future.result()))
        except BrokenProcessPool:
            raise WorkersLost("a worker process died (killed, or out of memory)") from None
        return finished

    def fractions(self) -> dict[Hashable, float]:
        """Progress of the jobs in flight (read even if nobody shows it: a full queue would block a worker's exit)."""
        found: dict[Hashable, float] = {}
        while not self.queue.empty():
            tag, fraction = self.queue.get()
            if tag in self.running:     # not a late word from a job already done
                found[self.running[tag]] = fraction
        return found

    def close(self, interrupted: bool) -> None:
        if interrupted:
            stop_pool(self.pool)
        else:
            self.pool.shutdown(wait=True)


class Dask:
    """The workers of a Dask distributed cluster, reached through its scheduler's address.

    Every way the cluster can fail becomes one line: no worker alive for ``NO_WORKER_S``,
    the scheduler gone, or a task that killed its worker again and again (``KilledWorker``).
    Each Dask worker is taken to have a machine's memory budget to itself.
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
        self.futures: dict[Any, Job] = {}
        self.alone_since: float | None = None
        try:
            self.client.wait_for_workers(1, timeout=self.NO_WORKER_S)
        except (TimeoutError, distributed.TimeoutError):
            self.close(True)
            raise PaysimError(f"no Dask worker is alive at {address} (waited {self.NO_WORKER_S:g}s); "
                              "start workers and run the sweep again") from None
        self.workers = max(1, sum(self.client.nthreads().values()))

    def submit(self, job: Job, task: Task, at_once: int) -> None:
        try:
            self.futures[self.client.submit(task, job.scenario, job.seed, job.replication, None, job.interval_s,
                                            job.engine, per_replication(1), pure=False)] = job
        except Exception as error:  # noqa: BLE001 - the client raises whatever its connection raised
            raise WorkersLost(f"lost the Dask scheduler at {self.address} ({type(error).__name__})") from None

    def completed(self) -> list[tuple[Job, Outcome]]:
        try:
            done = self.distributed.wait(list(self.futures), timeout=POLL_S, return_when="FIRST_COMPLETED").done
            finished = [(self.futures.pop(future), future.result()) for future in done]
        except TimeoutError:
            finished = []
        except self.distributed.KilledWorker:
            raise WorkersLost("a replication killed every Dask worker it ran on (out of memory, or a crash)") from None
        except PaysimError:
            raise
        except Exception as error:   # a cancelled future or a closed connection: the scheduler is gone
            if self.client.status == "running" and not isinstance(error, (OSError, self.distributed.CancelledError)):
                raise
            raise WorkersLost(f"lost the Dask scheduler at {self.address} ({type(error).__name__})") from None
        if not finished:
            self._check_workers()
        return finished

    def fractions(self) -> dict[Hashable, float]:
        return {}

    def _check_workers(self) -> None:
        """Jobs queued and no worker alive for NO_WORKER_S: stop with a message."""
        if self.client.status != "running":
            raise WorkersLost(f"lost the Dask scheduler at {self.address}")
        try:
            alive = bool(self.client.scheduler_info(n_workers=-1)["workers"]) if self.futures else True
        except TypeError:   # an older distributed: no n_workers argument
            alive = bool(self.client.scheduler_info()["workers"]) if self.futures else True
        except Exception as error:  # noqa: BLE001
            raise WorkersLost(f"lost the Dask scheduler at {self.address} ({type(error).__name__})") from None
        if alive:
            self.alone_since = None
            return
        now = time.monotonic()
        self.alone_since = self.alone_since or now
        if now - self.alone_since > self.NO_WORKER_S:
            raise WorkersLost(f"no Dask worker has been alive at {self.address} for {self.NO_WORKER_S:g}s")

    def close(self, interrupted: bool) -> None:
        with contextlib.suppress(Exception):   # a lost scheduler has nothing left to cancel
            if self.futures:
                self.client.cancel(list(self.futures))
        with contextlib.suppress(Exception):
            self.client.close(timeout=5)


def layout(jobs: Sequence[Job], workers: int, scheduler: str | None = None) -> str:
    """Where ``jobs`` run: dask when a scheduler is given; else inline for one worker or one job;
    threads when every job is compiled; inline when the SimPy work is too small to pay for
    starting processes; else processes."""
    if scheduler:
        return "dask"
    if min(workers, len(jobs)) <= 1:
        return "inline"
    if all(job.engine == "fast" for job in jobs):
        return "threads"
    return "inline" if sum(expected_arrivals(job.scenario) for job in jobs) < INLINE_ARRIVALS else "processes"


class Session:
    """Runs lists of jobs on up to ``workers`` cores (or a Dask cluster), keeping the pools it
    starts until it is closed. Use it as a context manager: leaving it by an exception
    (Ctrl-C included) stops the workers at once."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None) -> None:
        self.workers = workers or default_jobs()
        self.scheduler = scheduler
        self.backends: dict[str, Backend] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self.close(interrupted=kind is not None)

    def _backend(self, where: str, progress: Progress | None) -> Backend:
        if where == "inline":
            return Inline(progress)
        if where not in self.backends:
            self.backends[where] = (Dask(self.scheduler) if self.scheduler else Threads(self.workers)
                                    if where == "threads" else Processes(self.workers))
        return self.backends[where]

    def run(self, jobs: Sequence[Job], task: Task, progress: Progress | None = None,
            on_done: Done | None = None) -> list[Outcome]:
        """Run ``task`` for every job; return the outcomes in the order of ``jobs``.

        ``progress`` gets (key, fraction) from this thread, 1.0 when a job is done; ``on_done``
        gets each job and its outcome as it finishes (in the order given among those that
        finish together). On any exception (Ctrl-C, a task's error, one from a callback)
        the queued jobs are cancelled and the session's workers stopped before it goes on.
        """
        if not jobs:
            return []
        jobs = [replace(job, order=order) for order, job in enumerate(jobs)]
        where = layout(jobs, self.workers, self.scheduler)
        backend = self._backend(where, progress)
        at_once = 1 if where == "inline" else max(1, min(self.workers, len(jobs)))   # for the memory budget's share
        window = 2 * (backend.workers if isinstance(backend, Dask) else at_once)
        outcomes: list[Outcome | None] = [None] * len(jobs)
        queued, inflight = iter(jobs), 0
        try:
            while True:
                while inflight < window and (job := next(queued, None)) is not None:
                    backend.submit(job, task, at_once)
                    inflight += 1
                if not inflight:
                    break
                finished = sorted(backend.completed(), key=lambda item: item[0].order)
                for key, fraction in backend.fractions().items():   # of the jobs still running
                    if progress:
                        progress(key, fraction)
                for job, outcome in finished:
                    inflight -= 1
                    outcomes[job.order] = outcome
                    if progress:
                        progress(job.key, 1.0)
                    if on_done:
                        on_done(job, outcome)
        except BaseException:
            self.close(interrupted=True)
            raise
        return [outcome for outcome in outcomes if outcome is not None]

    def close(self, interrupted: bool = False) -> None:
        """Stop every pool this session started: at once if ``interrupted``, else once idle."""
        backends, self.backends = self.backends, {}
        for backend in backends.values():
            backend.close(interrupted)
