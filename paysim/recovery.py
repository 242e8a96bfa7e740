"""Recovery after a disturbance: how long after a slowdown, an outage or a surge of traffic
ends until the system is back to normal, per replication.

*Normal* is the pre-disturbance band, read from the replication's own time series before
its first disturbance (from the end of the warm-up): for each signal, the 95th percentile
of its samples there. The signals are the queue of every station the disturbance touches
(the slowed or failed station; for a surge in a stream's profile, every station the stream
reaches) at the sample instants, and the system's failures per second and p99 latency of
the successes over each sampling interval (the latency only where every baseline interval
had successes). The system has *recovered* at the first sample at or after the
disturbance's end from which every signal stays within its band for SUSTAIN samples in a
row; ``recovery_time`` is that sample's time minus the end (so its resolution is one
sampling interval). A replication with no such stretch before the horizon did not recover:
it counts in ``not_recovered`` (the share of replications), never in the mean, and a note
says so (a retry storm that never settles is reported that way, not as a number).

The series is sampled every :func:`interval` (about 120 samples over the horizon, whatever
``--out`` or ``--interval`` ask for, so the numbers do not depend on them), by either
engine between events: sampling changes no other number, and the series, one row per
sample, is all recovery needs, so memory does not grow with the transactions.

A station's disturbances are numbered in time order: ``stations.NAME.recovery_time`` for
its first, ``recovery_time_2`` for its second...; a stream's surges likewise under
``streams.NAME``. A surge is a stretch in which the profile's multiplier is above its
value at time 0; one that lasts to the horizon has no end to recover from and is not
measured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from paysim.scenario import Scenario
from paysim.stats import Estimate
from paysim.timeseries import default_interval

SUSTAIN = 3            # samples in a row within the band
BAND_QUANTILE = 0.95   # of the baseline samples
MIN_BASELINE = 5       # samples before the first disturbance, at least, for a band


@dataclass(frozen=True)
class Disturbance:
    scope: str                  # stations.NAME or streams.NAME
    suffix: str                 # "" for the scope's first, "_2" for its second...
    label: str
    start: float
    end: float
    stations: tuple[str, ...]   # whose queues must be back within their band

    @property
    def key(self) -> str:
        return f"{self.scope}.recovery_time{self.suffix}"

    @property
    def missed_key(self) -> str:
        return f"{self.scope}.not_recovered{self.suffix}"


def _surges(scenario: Scenario, stream: str) -> list[tuple[float, float]]:
    """The stretches in which a stream's profile multiplier is above its value at time 0 (ended ones)."""
    points = [(p.at, p.x) for p in scenario.arrivals[stream].profile or ()]
    base = next((x for at, x in points if at <= 0), 1.0)
    found, start = [], None
    for at, x in points:
        if x > base and start is None:
            start = at
        elif x <= base and start is not None:
            found.append((start, at))
            start = None
    return found


def disturbances(scenario: Scenario) -> list[Disturbance]:
    """Every slowdown, outage and ended surge of the scenario that ends before the horizon, by
    scope, each in time order."""
    return [d for d in _all_disturbances(scenario) if d.end < scenario.horizon]


def _all_disturbances(scenario: Scenario) -> list[Disturbance]:
    found = []
    for name, station in scenario.stations.items():
        windows = sorted([(w.at, w.at + w.length, f"{name} x{w.factor:g}") for w in station.slowdowns]
                         + [(w.at, w.at + w.length, f"{name} {w.mode}") for w in station.outages])
        for k, (start, end, label) in enumerate(windows):
            found.append(Disturbance(f"stations.{name}", f"_{k + 1}" if k else "", label, start, end, (name,)))
    surging = [name for name, arrival in scenario.arrivals.items() if arrival.profile]
    if surging:
        from paysim.network import Network  # reads the scenario models: imported late, no cycle

        network = Network(scenario)
        for name in surging:
            reached = tuple(s for s in scenario.stations if s in network.visited(name))
            for k, (start, end) in enumerate(_surges(scenario, name)):
                found.append(Disturbance(f"streams.{name}", f"_{k + 1}" if k else "", f"{name} surge", start, end,
                                         reached))
    return found


def interval(scenario: Scenario) -> float | None:
    """The sampling interval recovery reads (None: nothing to recover from)."""
    return default_interval(scenario.horizon) if disturbances(scenario) else None


def _baseline_span(scenario: Scenario) -> tuple[float, float]:
    return scenario.warmup or 0.0, min(d.start for d in disturbances(scenario))


def baseline_samples(scenario: Scenario) -> int:
    """How many samples fall before the first disturbance (after the warm-up)."""
    step = interval(scenario)
    if step is None:
        return 0
    low, high = _baseline_span(scenario)
    return sum(1 for k in range(1, int(scenario.horizon / step) + 1) if low < k * step <= high)


def _signals(d: Disturbance) -> list[str]:
    return [*(f"stations.{name}.queue" for name in d.stations), "system.failures_per_s", "system.latency.p99"]


def recovery_row(scenario: Scenario, series: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """One replication's recovery times from its series sampled every :func:`interval`."""
    found = disturbances(scenario)
    if not found or baseline_samples(scenario) < MIN_BASELINE:
        return {}
    low, high = _baseline_span(scenario)
    before = [row for row in series if low < row["t"] <= high]
    row: dict[str, float] = {}
    for d in found:
        bands = {}
        for key in _signals(d):
            values = np.array([r[key] for r in before], float)
            if np.isfinite(values).all():        # (latency: only where every baseline interval had successes)
                bands[key] = float(np.quantile(values, BAND_QUANTILE))
        inside = [all(r[key] <= band for key, band in bands.items()) for r in series]   # NaN is outside
        after = [j for j, r in enumerate(series) if r["t"] >= d.end]
        recovered = next((j for j in after if j + SUSTAIN <= len(series) and all(inside[j:j + SUSTAIN])), None)
        row[d.key] = math.nan if recovered is None else series[recovered]["t"] - d.end
        row[d.missed_key] = float(recovered is None)
    return row


def recovery_notes(scenario: Scenario, rows: Sequence[Mapping[str, float]]) -> list[str]:
    """What a reader of the recovery times must know: replications that did not recover, or why none was measured."""
    found = disturbances(scenario)
    notes = []
    for name, arrival in scenario.arrivals.items():
        points = [(p.at, p.x) for p in arrival.profile or ()]
        base = next((x for at, x in points if at <= 0), 1.0)
        if points and points[-1][1] > base:
            notes.append(f"streams.{name}: its profile ends above its starting rate, so there is no end of the surge "
                         "to recover from (not measured)")
    for d in _all_disturbances(scenario):
        if d.start < scenario.horizon <= d.end:
            notes.append(f"{d.key} (after {d.label}, {d.start:g}s to {d.end:g}s): not measured, it lasts to the horizon")
    if not found:
        return notes
    samples = baseline_samples(scenario)
    if samples < MIN_BASELINE:
        step = interval(scenario)
        return notes + [(f"recovery_time: not measured, only {samples} samples (every {step:g}s) before the first "
                        f"disturbance at {_baseline_span(scenario)[1]:g}s, and {MIN_BASELINE} are needed for a "
                        "pre-disturbance band")]
    for d in found:
        missed = sum(row.get(d.missed_key, 0.0) > 0 for row in rows)
        what = f"{d.key} (after {d.label}, {d.start:g}s to {d.end:g}s)"
        if missed == len(rows):
            notes.append(f"{what}: did not recover within the horizon in any of the {len(rows)} replications")
        elif missed:
            notes.append(f"{what}: did not recover within the horizon in {missed} of {len(rows)} replications; the "
                         f"mean and CI are over the {len(rows) - missed} that did")
    return notes


def marks(scenario: Scenario, summary: Mapping[str, Estimate]) -> list[dict[str, object]]:
    """What the time-series plot shows of each recovery (JSON-ready, kept in results.json's timeline):
    the disturbance's end, the mean recovery time (None when no replication recovered) and the
    share of replications that did not."""
    found = []
    for d in disturbances(scenario):
        time, missed = summary.get(d.key), summary.get(d.missed_key)
        if time is None or missed is None:   # not measured
            continue
        found.append({"label": d.label, "end": d.end, "mean": time.mean if math.isfinite(time.mean) else None,
                      "not_recovered": missed.mean})
    return found
