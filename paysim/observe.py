"""Streaming observation of one replication, in memory that does not grow with run length.

The engine tells an :class:`Observer` what happened (a transaction entered, a service
started, a station rejected someone...) and when. The observer keeps counters, sums,
time-weighted integrals of populations and latency sketches, and at the end turns
them into one flat row of per-replication metrics (``"stations.pool.Wq": 0.013``).

Measurement covers the window [warm-up, horizon]: :meth:`Observer.start_window`
zeroes everything accumulated before it, keeping only the current populations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from paysim.breakers import BreakerObserver, breaker_rows
from paysim.scenario.fields import UNLIMITED_WORKERS
from paysim.sketch import QuantileSketch
from paysim.transient import drain_row

PERCENTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99, "p999": 0.999}


def _rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.nan


def _ratio(total: float, count: float) -> float:
    return total / count if count else math.nan


def _latency_row(prefix: str, sketch: QuantileSketch) -> dict[str, float]:
    return {f"{prefix}.latency.{key}": sketch.quantile(q) for key, q in PERCENTILES.items()}


def _all_requests_row(prefix: str, sketch: QuantileSketch, succeeded: float, failed: float) -> dict[str, float]:
    """Percentiles over every request decided in the window, a failed one counting as infinitely slow
    (it never got a good answer: the SRE reading of a latency objective). Successes sort first, so
    the rank q(n-1) among all n is the same rank among the successes, or infinite beyond them."""
    decided = succeeded + failed
    row = {}
    for key, q in PERCENTILES.items():
        rank = q * (decided - 1)
        if decided == 0:
            value = math.nan
        elif rank > succeeded - 1:
            value = math.inf
        else:
            value = sketch.quantile(rank / (succeeded - 1) if succeeded > 1 else 0.0)
        row[f"{prefix}.latency_all.{key}"] = value
    return row


class StationObserver:
    """Population integrals and visit statistics of one station."""

    def __init__(self, workers: int, mean_service_s: float, batch: bool = False, per_batch_s: float = 0.0,
                 cores: int | None = None) -> None:
        self.workers = workers    # current capacity (a schedule or an executor changes it)
        self.mean_service_s = mean_service_s   # per item at a batch station
        self.per_batch_s = per_batch_s         # a batch station's time per batch, on top
        self.in_station = 0       # waiting + in service
        self.busy = 0             # transactions in service
        self.batch = batch        # then workers process batches: busy_workers counts the workers
        self.busy_workers = 0
        self.threads: int | None = None   # an executor's live threads
        self.cores = cores        # the cores its workers' service work shares (over all instances)
        self.cpu_busy = 0         # cores in use: min(computing, cores), summed over instances
        self.limited = False      # has a rate limit: report rate_limited
        self.cached = False       # has a cache: report cache_hit_rate
        self.held: int | None = None      # workers waiting on calls (at a station with calls)
        self._last = 0.0
        self.draining = self.drain_measured = False   # a backlog's drain (paysim.transient)
        self.drained_at: float | None = None
        self.start_window(0.0)

    def _advance(self, now: float) -> None:
        elapsed = now - self._last
        if elapsed:
            self.area_in_station += self.in_station * elapsed
            self.area_busy += self.busy * elapsed
            self.area_workers += self.workers * elapsed
            if self.batch:
                self.area_busy_workers += self.busy_workers * elapsed
            if self.threads is not None:
                self.area_threads += self.threads * elapsed
            if self.cores is not None:
                self.area_cpu += self.cpu_busy * elapsed
            if self.held:
                self.area_held += self.held * elapsed
            self._last = now

    @property
    def unlimited(self) -> bool:
        return self.workers >= UNLIMITED_WORKERS

    def start_window(self, now: float) -> None:
        self._advance(now)
        if hasattr(self, "finished"):   # what the window's start zeroes, for lifetime()
            self._before = self.lifetime(now)
        self.area_in_station = self.area_busy = self.area_workers = self.area_busy_workers = self.area_threads = 0.0
        self.area_cpu = 0.0
        self.area_held = 0.0
        self.entered = self.rejected = self.started = self.finished = self.errored = 0
        self.dropped = 0          # rejected after entering (an executor's discard_oldest), within rejected
        self.abandoned = self.cancelled = self.batches = 0
        self.rate_limited = 0     # turned away by the station's token bucket, before entering
        self.cache_hits = 0       # services done by the station's cache (counted at their start)
        self.outcomes = {"approve": 0, "review": 0, "decline": 0}
        self.sum_wait = self.sum_sojourn = self.sum_service = 0.0
        # over every departure, withdrawn work included: what Little's law needs
        self.departed = 0
        self.sum_time_all = self.sum_wait_all = self.sum_service_all = 0.0
        self.sketch = QuantileSketch()

    def lifetime(self, now: float) -> tuple[float, float, float, float, int]:
        """Since time 0, warm-up included, read without advancing the integrals (the run's numbers
        must not depend on who reads them): the areas of transactions in the station, in service
        and of workers, the sum of sojourn times and the count of those that finished."""
        elapsed = now - self._last
        area_in, area_busy, area_workers, sojourn, finished = getattr(self, "_before", (0.0, 0.0, 0.0, 0.0, 0))
        return (area_in + self.area_in_station + self.in_station * elapsed,
                area_busy + self.area_busy + self.busy * elapsed,
                area_workers + self.area_workers + self.workers * elapsed,
                sojourn + self.sum_sojourn, finished + self.finished)

    def enter(self, now: float) -> None:
        self._advance(now)
        self.in_station += 1
        self.entered += 1

    def arm_drain(self, now: float) -> None:
        """A backlog is in place: from now on, note when the queue first empties."""
        self.drain_measured = self.draining = True
        self._check_drained(now)

    def _check_drained(self, now: float) -> None:
        if self.draining and self.in_station == self.busy:
            self.draining = False
            self.drained_at = now

    def reject(self, now: float) -> None:
        self.rejected += 1

    def rate_limit(self, now: float) -> None:
        """A request found no token in the station's rate limit."""
        self.rate_limited += 1

    def drop(self, now: float, wait: float) -> None:
        """A queued transaction is thrown out to make room (``discard_oldest``): rejected."""
        self._depart(now, wait, wait, 0.0)
        self.rejected += 1
        self.dropped += 1

    def set_workers(self, now: float, workers: int) -> None:
        self._advance(now)
        self.workers = workers

    def set_threads(self, now: float, threads: int) -> None:
        self._advance(now)
        self.threads = threads

    def cpu_change(self, now: float, delta: int) -> None:
        """Cores in use change by ``delta`` (a station with ``cores``)."""
        self._advance(now)
        self.cpu_busy += delta
    def hold(self, now: float, delta: int) -> None:
        """A worker starts (+1) or stops (-1) waiting on its transaction's calls; it stays busy."""
        self._advance(now)
        self.held = (self.held or 0) + delta   # set to 0 where a station has calls

    def batch_started(self, now: float, delta: int) -> None:
        """A worker takes up (+1) or finishes (-1) a batch."""
        self._advance(now)
        self.busy_workers += delta
        self.batches += delta > 0

    def start(self, now: float, wait: float) -> None:
        self._advance(now)
        self.busy += 1
        self.started += 1
        self.sum_wait += wait
        if self.draining:
            self._check_drained(now)

    def _depart(self, now: float, sojourn: float, wait: float, service: float) -> None:
        self._advance(now)
        self.in_station -= 1
        self.departed += 1
        self.sum_time_all += sojourn
        self.sum_wait_all += wait
        self.sum_service_all += service

    def finish(self, now: float, sojourn: float, service: float, error: bool = False) -> None:
        self._depart(now, sojourn, sojourn - service, service)
        self.busy -= 1
        self.finished += 1
        self.errored += error
        self.sum_sojourn += sojourn
        self.sum_service += service
        self.sketch.add(sojourn)

    def withdraw(self, now: float, sojourn: float, wait: float, service: float, in_service: bool) -> None:
        """Work whose client timed out is taken back (``on_timeout: cancel``)."""
        self._depart(now, sojourn, wait, service)
        if in_service:
            self.busy -= 1
            self.cancelled += 1
        else:
            self.abandoned += 1
            if self.draining:
                self._check_drained(now)

    def row(self, prefix: str, window_s: float) -> dict[str, float]:
        offered = self.entered + self.rejected + self.rate_limited - self.dropped   # a dropped one had entered
        arrival_rate = _rate(offered, window_s)
        busy_workers = self.area_busy_workers if self.batch else self.area_busy
        # work offered per second in worker-seconds: a batch's own time is shared by its items
        per_item = self.mean_service_s + (self.per_batch_s / (self.started / self.batches if self.batches else 1.0))
        row = {
            f"{prefix}.arrival_rate": arrival_rate,
            f"{prefix}.offered_load": arrival_rate * per_item,
            f"{prefix}.throughput": _rate(self.finished, window_s),
            f"{prefix}.goodput": _rate(self.finished - self.errored, window_s),
            # of an infinite-server station (workers: unlimited) not defined
            f"{prefix}.utilization": math.nan if self.unlimited else _ratio(busy_workers, self.area_workers),
            f"{prefix}.busy": _ratio(busy_workers, window_s),          # busy workers
            f"{prefix}.in_service": _ratio(self.area_busy, window_s),  # transactions (a batch's items)
            f"{prefix}.L": _ratio(self.area_in_station, window_s),
            f"{prefix}.Lq": _ratio(self.area_in_station - self.area_busy, window_s),
            f"{prefix}.W": _ratio(self.sum_sojourn, self.finished),
            f"{prefix}.Wq": _ratio(self.sum_wait, self.started),
            f"{prefix}.S": _ratio(self.sum_service, self.finished),
            f"{prefix}.rejected": float(self.rejected),
            f"{prefix}.rejection_rate": _ratio(self.rejected, offered),
            f"{prefix}.errored": float(self.errored),
            f"{prefix}.error_rate": _ratio(self.errored, self.finished),
            f"{prefix}.abandoned": float(self.abandoned),
            f"{prefix}.cancelled": float(self.cancelled),
            # Little's law inputs: the rate of entries, and times over every departure
            f"{prefix}.entry_rate": _rate(self.entered, window_s),
            f"{prefix}.W_all": _ratio(self.sum_time_all, self.departed),
            f"{prefix}.Wq_all": _ratio(self.sum_wait_all, self.departed),
            f"{prefix}.S_all": _ratio(self.sum_service_all, self.departed),
        }
        if self.limited:
            row[f"{prefix}.rate_limited"] = float(self.rate_limited)
            row[f"{prefix}.rate_limited_rate"] = _ratio(self.rate_limited, offered)
        if self.cached:
            row[f"{prefix}.cache_hit_rate"] = _ratio(self.cache_hits, self.started)
        if self.threads is not None:
            row[f"{prefix}.threads"] = _ratio(self.area_threads, window_s)
        if self.cores is not None:
            row[f"{prefix}.cpu_utilization"] = _ratio(self.area_cpu, self.cores * window_s)
        if self.held is not None:
            row[f"{prefix}.held"] = _ratio(self.area_held, window_s)
        # workers alive on average: an executor's live threads, else the count a schedule or an
        # autoscaler sets (a worker told to leave while busy finishes first, uncounted); none
        # for unlimited workers
        if not self.unlimited:
            row[f"{prefix}.workers"] = row[f"{prefix}.threads"] if self.threads is not None else \
                _ratio(self.area_workers, window_s)
        if self.batch:
            row[f"{prefix}.batch_size"] = _ratio(self.started, self.batches)
        decided = sum(self.outcomes.values())
        if decided:
            for outcome, count in self.outcomes.items():
                row[f"{prefix}.{outcome}_rate"] = count / decided
        row.update(_latency_row(prefix, self.sketch))
        if self.drain_measured:
            row.update(drain_row(prefix, self.drained_at))
        return row


# final outcomes other than success; with on_timeout: cancel a timed-out attempt is
# "abandoned" if withdrawn while queued, "cancelled" if interrupted in service
# ("breaker_open": a call's circuit breaker refused it; reported only where there are breakers;
# "rate_limited": a token bucket, of the stream or a station, had no token for it)
FAILURES = ("rejected", "timed_out", "errored", "abandoned", "cancelled", "breaker_open", "rate_limited")
_FAILURE_RATES = {"rejected": "rejection_rate", "timed_out": "timeout_rate", "errored": "error_rate",
                  "abandoned": "abandon_rate", "cancelled": "cancel_rate", "breaker_open": "breaker_open_rate",
                  "rate_limited": "rate_limited_rate"}


class StreamObserver:
    """One arrival stream: its clients' outcomes, and its attempts inside the system.

    An original request may make several attempts (retries). The client sees one outcome
    per original request: success (within its timeout) or a failure by reason. The
    system sees attempts: each enters, spends time in stations and leaves, even after its
    client stopped waiting; Little's law is checked over attempts.
    """

    def __init__(self) -> None:
        self.in_system = 0
        self._last = 0.0
        # since time 0, never reset by the warm-up: what a time series differences
        self.totals = dict.fromkeys(("arrived", "retries", "finished", "succeeded", "failed"), 0)
        self.interval_sketch: QuantileSketch | None = None   # latencies since the last sample, if sampled
        self.area_in_system = self.area_before_window = 0.0   # the latter: what the window's start zeroed
        self.start_window(0.0)

    def _advance(self, now: float) -> None:
        elapsed = now - self._last
        if elapsed:
            self.area_in_system += self.in_system * elapsed
            self._last = now

    def start_window(self, now: float) -> None:
        self._advance(now)
        self.at_start = self.in_system     # attempts inside when the window opened
        self.area_before_window += self.area_in_system
        self.area_in_system = 0.0
        self.arrived = self.succeeded = self.attempts = self.retries = self.finished = 0
        self.failures = dict.fromkeys(FAILURES, 0)
        self.sum_latency = self.sum_success_wait = 0.0
        self.background_failed = 0         # lost after their reply (reply: true): not a client failure
        self.departed = 0
        self.sum_time = self.sum_wait = self.sum_service = 0.0
        self.sketch = QuantileSketch()

    def arrive(self, now: float) -> None:
        """An original request."""
        self.arrived += 1
        self.totals["arrived"] += 1

    def enter(self, now: float, retry: bool) -> None:
        """An attempt enters the system."""
        self._advance(now)
        self.in_system += 1
        self.attempts += 1
        self.retries += retry
        self.totals["retries"] += retry

    def leave(self, now: float, time_in_system: float, wait: float, service: float, finished: bool) -> None:
        """An attempt leaves the system: ``finished`` its route, or lost on the way."""
        self._advance(now)
        self.in_system -= 1
        self.departed += 1
        self.finished += finished
        self.totals["finished"] += finished
        self.sum_time += time_in_system
        self.sum_wait += wait
        self.sum_service += service

    def detached_work(self, wait: float, service: float) -> None:
        """Queueing and service a call did after its caller stopped waiting for it (a step's
        timeout with the callee's ``on_timeout: continue``): counted with the attempts' own, so
        that Little's law over the system still sums every transaction's time in the stations."""
        self.sum_wait += wait
        self.sum_service += service

    def succeed(self, latency: float, wait: float) -> None:
        self.succeeded += 1
        self.totals["succeeded"] += 1
        self.sum_latency += latency
        self.sum_success_wait += wait
        self.sketch.add(latency)
        if self.interval_sketch is not None:
            self.interval_sketch.add(latency)

    def background_fail(self) -> None:
        """A request already answered (``reply: true``) was lost on the rest of its route."""
        self.background_failed += 1

    def fail(self, reason: str) -> None:
        self.failures[reason] += 1
        self.totals["failed"] += 1


def _stream_row(prefix: str, streams: Sequence[StreamObserver], window_s: float, sketch: QuantileSketch,
                breakers: bool = False) -> dict[str, float]:
    def total(attribute: str) -> float:
        return sum(getattr(s, attribute) for s in streams)

    arrived, succeeded, departed = total("arrived"), total("succeeded"), total("departed")
    failures = {reason: sum(s.failures[reason] for s in streams) for reason in FAILURES}
    # loss rates are over the requests whose outcome fell in the window: out of arrivals, a
    # warm-up that cuts requests in two could count failures of requests that never arrived in it
    decided = succeeded + sum(failures.values())
    row = {
        f"{prefix}.arrival_rate": _rate(arrived, window_s),
        f"{prefix}.throughput": _rate(total("finished"), window_s),
        f"{prefix}.goodput": _rate(succeeded, window_s),
        f"{prefix}.L": _ratio(total("area_in_system"), window_s),
        f"{prefix}.W": _ratio(total("sum_latency"), succeeded),
        f"{prefix}.Wq": _ratio(total("sum_success_wait"), succeeded),
        f"{prefix}.attempts": float(total("attempts")),
        f"{prefix}.retries": float(total("retries")),
        f"{prefix}.retry_amplification": _ratio(total("attempts"), arrived),
        f"{prefix}.failed": float(sum(failures.values())),
        f"{prefix}.failure_rate": _ratio(sum(failures.values()), decided),
        f"{prefix}.background_failed": float(total("background_failed")),
        # Little's law inputs over attempts, lost and abandoned ones included
        f"{prefix}.entry_rate": _rate(total("attempts"), window_s),
        f"{prefix}.W_all": _ratio(total("sum_time"), departed),
        f"{prefix}.Wq_all": _ratio(total("sum_wait"), departed),
        f"{prefix}.S_all": _ratio(total("sum_service"), departed),
        f"{prefix}.departed": float(departed),   # attempts that left in the window (conservation)
    }
    for reason, count in failures.items():
        if reason == "breaker_open" and not breakers:
            continue
        row[f"{prefix}.{reason}"] = float(count)
        row[f"{prefix}.{_FAILURE_RATES[reason]}"] = _ratio(count, decided)
    row.update(_latency_row(prefix, sketch))
    row.update(_all_requests_row(prefix, sketch, succeeded, sum(failures.values())))
    return row


class Observer:
    """Everything observed in one replication, keyed by station and stream name."""

    def __init__(self, stations: dict[str, StationObserver], streams: dict[str, StreamObserver],
                 breakers: list[BreakerObserver] | None = None) -> None:
        self.stations = stations
        self.streams = streams
        self.breakers = breakers or []     # paysim.breakers.breaker_steps' order
        self.window_start = 0.0
        self.window_end = math.nan

    def _observers(self) -> tuple[StationObserver | StreamObserver, ...]:
        return (*self.stations.values(), *self.streams.values())

    def start_window(self, now: float) -> None:
        self.window_start = now
        for observer in self._observers():
            observer.start_window(now)
        for breaker in self.breakers:
            breaker.start_window(now)

    def close(self, now: float) -> None:
        self.window_end = now
        for observer in self._observers():
            observer._advance(now)
        for breaker in self.breakers:
            breaker.close(now)

    def row(self) -> dict[str, float]:
        """One replication's metrics as a flat mapping of dotted names to floats."""
        window_s = self.window_end - self.window_start
        row: dict[str, float] = {}
        system_sketch = QuantileSketch()
        for name, stream in self.streams.items():
            row.update(_stream_row(f"streams.{name}", [stream], window_s, stream.sketch, bool(self.breakers)))
            system_sketch.merge(stream.sketch)
        row.update(_stream_row("system", list(self.streams.values()), window_s, system_sketch, bool(self.breakers)))
        for name, station in self.stations.items():
            row.update(station.row(f"stations.{name}", window_s))
        stations = self.stations.values()
        row["system.Lq"] = sum(row[f"stations.{n}.Lq"] for n in self.stations)
        row["system.busy"] = sum(row[f"stations.{n}.busy"] for n in self.stations)
        row["system.in_service"] = sum(row[f"stations.{n}.in_service"] for n in self.stations)
        limited = [s for s in stations if not s.unlimited]   # an infinite-server station has no utilisation
        row["system.utilization"] = _ratio(sum(s.area_busy_workers if s.batch else s.area_busy for s in limited),
                                           sum(s.area_workers for s in limited))
        row["system.in_system_at_start"] = float(sum(s.at_start for s in self.streams.values()))
        row["system.in_system_at_end"] = float(sum(s.in_system for s in self.streams.values()))
        row.update(breaker_rows(self.breakers, window_s))
        return row
