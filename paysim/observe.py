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

from paysim.sketch import QuantileSketch

PERCENTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99, "p999": 0.999}


def _rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.nan


def _ratio(total: float, count: float) -> float:
    return total / count if count else math.nan


def _latency_row(prefix: str, sketch: QuantileSketch) -> dict[str, float]:
    return {f"{prefix}.latency.{key}": sketch.quantile(q) for key, q in PERCENTILES.items()}


class StationObserver:
    """Population integrals and visit statistics of one station."""

    def __init__(self, workers: int, mean_service_s: float) -> None:
        self.workers = workers
        self.mean_service_s = mean_service_s
        self.in_station = 0       # waiting + in service
        self.busy = 0
        self._last = 0.0
        self.start_window(0.0)

    def _advance(self, now: float) -> None:
        elapsed = now - self._last
        if elapsed:
            self.area_in_station += self.in_station * elapsed
            self.area_busy += self.busy * elapsed
            self._last = now

    def start_window(self, now: float) -> None:
        self._advance(now)
        self.area_in_station = self.area_busy = 0.0
        self.entered = self.rejected = self.started = self.finished = 0
        self.sum_wait = self.sum_sojourn = self.sum_service = 0.0
        self.sketch = QuantileSketch()

    def enter(self, now: float) -> None:
        self._advance(now)
        self.in_station += 1
        self.entered += 1

    def reject(self, now: float) -> None:
        self.rejected += 1

    def start(self, now: float, wait: float) -> None:
        self._advance(now)
        self.busy += 1
        self.started += 1
        self.sum_wait += wait

    def finish(self, now: float, sojourn: float, service: float) -> None:
        self._advance(now)
        self.busy -= 1
        self.in_station -= 1
        self.finished += 1
        self.sum_sojourn += sojourn
        self.sum_service += service
        self.sketch.add(sojourn)

    def row(self, prefix: str, window_s: float) -> dict[str, float]:
        offered = self.entered + self.rejected
        arrival_rate = _rate(offered, window_s)
        busy = _ratio(self.area_busy, window_s)
        row = {
            f"{prefix}.arrival_rate": arrival_rate,
            f"{prefix}.offered_load": arrival_rate * self.mean_service_s,
            f"{prefix}.throughput": _rate(self.finished, window_s),
            f"{prefix}.goodput": _rate(self.finished, window_s),
            f"{prefix}.utilization": busy / self.workers,
            f"{prefix}.busy": busy,
            f"{prefix}.L": _ratio(self.area_in_station, window_s),
            f"{prefix}.Lq": _ratio(self.area_in_station - self.area_busy, window_s),
            f"{prefix}.W": _ratio(self.sum_sojourn, self.finished),
            f"{prefix}.Wq": _ratio(self.sum_wait, self.started),
            f"{prefix}.S": _ratio(self.sum_service, self.finished),
            f"{prefix}.rejected": float(self.rejected),
            f"{prefix}.rejection_rate": _ratio(self.rejected, offered),
            # Little's law inputs: the rate of transactions that entered the station
            f"{prefix}.entry_rate": _rate(self.entered, window_s),
        }
        row.update(_latency_row(prefix, self.sketch))
        return row


class StreamObserver:
    """End-to-end statistics of the transactions of one arrival stream."""

    def __init__(self) -> None:
        self.in_system = 0
        self._last = 0.0
        self.start_window(0.0)

    def _advance(self, now: float) -> None:
        elapsed = now - self._last
        if elapsed:
            self.area_in_system += self.in_system * elapsed
            self._last = now

    def start_window(self, now: float) -> None:
        self._advance(now)
        self.area_in_system = 0.0
        self.arrived = self.completed = self.rejected = 0
        self.sum_latency = self.sum_completed_wait = 0.0
        # over every departure, completed or lost: what Little's law needs
        self.departed = 0
        self.sum_time = self.sum_wait = self.sum_service = 0.0
        self.sketch = QuantileSketch()

    def enter(self, now: float) -> None:
        self._advance(now)
        self.in_system += 1
        self.arrived += 1

    def _depart(self, now: float, time_in_system: float, wait: float, service: float) -> None:
        self._advance(now)
        self.in_system -= 1
        self.departed += 1
        self.sum_time += time_in_system
        self.sum_wait += wait
        self.sum_service += service

    def complete(self, now: float, latency: float, wait: float, service: float) -> None:
        self._depart(now, latency, wait, service)
        self.completed += 1
        self.sum_latency += latency
        self.sum_completed_wait += wait
        self.sketch.add(latency)

    def reject(self, now: float, time_in_system: float, wait: float, service: float) -> None:
        self._depart(now, time_in_system, wait, service)
        self.rejected += 1


def _stream_row(prefix: str, streams: Sequence[StreamObserver], window_s: float, sketch: QuantileSketch) -> dict[str, float]:
    arrived = sum(s.arrived for s in streams)
    completed = sum(s.completed for s in streams)
    rejected = sum(s.rejected for s in streams)
    departed = sum(s.departed for s in streams)
    arrival_rate = _rate(arrived, window_s)
    row = {
        f"{prefix}.arrival_rate": arrival_rate,
        f"{prefix}.throughput": _rate(completed, window_s),
        f"{prefix}.goodput": _rate(completed, window_s),
        f"{prefix}.L": _ratio(sum(s.area_in_system for s in streams), window_s),
        f"{prefix}.W": _ratio(sum(s.sum_latency for s in streams), completed),
        f"{prefix}.Wq": _ratio(sum(s.sum_completed_wait for s in streams), completed),
        f"{prefix}.rejected": float(rejected),
        f"{prefix}.rejection_rate": _ratio(rejected, arrived),
        f"{prefix}.failed": float(rejected),
        f"{prefix}.failure_rate": _ratio(rejected, arrived),
        # Little's law inputs over every departure, lost ones included
        f"{prefix}.entry_rate": arrival_rate,
        f"{prefix}.W_all": _ratio(sum(s.sum_time for s in streams), departed),
        f"{prefix}.Wq_all": _ratio(sum(s.sum_wait for s in streams), departed),
        f"{prefix}.S_all": _ratio(sum(s.sum_service for s in streams), departed),
    }
    row.update(_latency_row(prefix, sketch))
    return row


class Observer:
    """Everything observed in one replication, keyed by station and stream name."""

    def __init__(self, stations: dict[str, StationObserver], streams: dict[str, StreamObserver]) -> None:
        self.stations = stations
        self.streams = streams
        self.window_start = 0.0
        self.window_end = math.nan

    def start_window(self, now: float) -> None:
        self.window_start = now
        for observer in (*self.stations.values(), *self.streams.values()):
            observer.start_window(now)

    def close(self, now: float) -> None:
        self.window_end = now
        for observer in (*self.stations.values(), *self.streams.values()):
            observer._advance(now)

    def row(self) -> dict[str, float]:
        """One replication's metrics as a flat mapping of dotted names to floats."""
        window_s = self.window_end - self.window_start
        row: dict[str, float] = {}
        system_sketch = QuantileSketch()
        for name, stream in self.streams.items():
            row.update(_stream_row(f"streams.{name}", [stream], window_s, stream.sketch))
            system_sketch.merge(stream.sketch)
        row.update(_stream_row("system", list(self.streams.values()), window_s, system_sketch))
        for name, station in self.stations.items():
            row.update(station.row(f"stations.{name}", window_s))
        stations = self.stations.values()
        row["system.Lq"] = sum(row[f"stations.{n}.Lq"] for n in self.stations)
        row["system.busy"] = sum(row[f"stations.{n}.busy"] for n in self.stations)
        row["system.utilization"] = row["system.busy"] / sum(s.workers for s in stations)
        row["system.in_system_at_end"] = float(sum(s.in_system for s in self.streams.values()))
        return row
