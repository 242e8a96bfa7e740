"""A run read like a monitoring dashboard: metrics per interval of simulated time.

Each replication is sampled every ``interval`` seconds from time 0 (warm-up included,
since the dynamics are the point): rates of arrivals, finished attempts, successes
(goodput), failures and retries over the interval; latency percentiles of the
requests that succeeded in it; and each station's queue length and busy workers at
the sample instant (with calls, the busy workers held waiting on them; with cores, the
share of cores in use), and its workers alive. Replications are averaged interval by interval. Memory is one
row per interval, however many transactions run.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from paysim.observe import Observer
from paysim.sketch import QuantileSketch

RATES = {"arrived": "arrival_rate", "finished": "throughput", "succeeded": "goodput",
         "failed": "failures_per_s", "retries": "retries_per_s"}
DEFAULT_POINTS = 120


def default_interval(horizon_s: float) -> float:
    """About DEFAULT_POINTS samples, rounded to a readable step."""
    raw = horizon_s / DEFAULT_POINTS
    steps = [0.001, 0.01, 0.1, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600]
    return max([s for s in steps if s <= raw] or [raw])


class SeriesRecorder:
    """Samples one replication's observer; ``sample`` is called by the engine every interval."""

    def __init__(self, observer: Observer, interval_s: float) -> None:
        self.observer = observer
        self.interval_s = interval_s
        self.rows: list[dict[str, float]] = []
        self._last_totals = {name: dict(s.totals) for name, s in observer.streams.items()}
        self._last_t = 0.0
        self._last_area = 0.0
        for stream in observer.streams.values():
            stream.interval_sketch = QuantileSketch()

    def sample(self, now: float) -> None:
        elapsed = now - self._last_t
        if elapsed <= 0:
            return
        row: dict[str, float] = {"t": now}
        sums = dict.fromkeys(RATES, 0)
        merged = QuantileSketch()
        area = 0.0
        for name, stream in self.observer.streams.items():
            # the area since time 0, read without advancing the stream's integral: splitting it
            # here would change its rounding, and the run's numbers must not depend on sampling
            area += stream.area_before_window + stream.area_in_system + stream.in_system * (now - stream._last)
            last = self._last_totals[name]
            for key in RATES:
                sums[key] += stream.totals[key] - last[key]
            self._last_totals[name] = dict(stream.totals)
            if stream.interval_sketch is not None:   # set by __init__, so always: narrowed for the type
                merged.merge(stream.interval_sketch)
            stream.interval_sketch = QuantileSketch()
        for key, metric in RATES.items():
            row[f"system.{metric}"] = sums[key] / elapsed
        row["system.L"] = (area - self._last_area) / elapsed   # time-average population over the interval
        self._last_area = area
        row["system.latency.p50"] = merged.quantile(0.5)
        row["system.latency.p99"] = merged.quantile(0.99)
        for name, station in self.observer.stations.items():
            row[f"stations.{name}.queue"] = float(station.in_station - station.busy)
            # workers at work: a batch station's items in service are one batch per worker
            row[f"stations.{name}.busy"] = float(station.busy_workers if station.batch else station.busy)
            if station.threads is not None:   # an executor's live threads (idle ones included)
                row[f"stations.{name}.threads"] = float(station.threads)
            if station.held is not None:      # busy workers waiting on calls (a station with calls)
                row[f"stations.{name}.held"] = float(station.held)
            if station.cores is not None:     # share of its cores in use
                row[f"stations.{name}.cpu_utilization"] = station.cpu_busy / station.cores
            if not station.unlimited:         # workers alive: an executor's threads, else what a schedule
                row[f"stations.{name}.workers"] = float(    # or an autoscaler set
                    station.threads if station.threads is not None else station.workers)
        self.rows.append(row)
        self._last_t = now


def average(series: Sequence[Sequence[dict[str, float]]]) -> list[dict[str, float]]:
    """Interval-by-interval mean over replications (NaN where no replication has a value)."""
    if not series:
        return []
    out = []
    for rows in zip(*series):
        merged = {"t": rows[0]["t"]}
        for key in rows[0]:
            if key != "t":
                values = np.array([row[key] for row in rows], dtype=float)
                finite = values[np.isfinite(values)]
                merged[key] = float(finite.mean()) if finite.size else math.nan
        out.append(merged)
    return out


def write_csv(rows: Sequence[dict[str, float]], path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(rows[0]) if rows else ["t"])
        for row in rows:
            writer.writerow(["" if not math.isfinite(v) else repr(v) for v in row.values()])
    return path
