"""The time series of ``--out``, sampled by the compiled engine as
:class:`paysim.timeseries.SeriesRecorder` samples the SimPy engine.

Samples are taken at the SimPy engine's instants (every interval from time 0, the last
at the horizon) and each reads the state *between* events: the event loop takes every
sample due before it pops the next event, so sampling adds no event, shifts no sequence
number and draws no random number; the run's numbers are the same with or without it.
A sample reads the accumulators without advancing them (the areas up to the sample are
computed, not stored), so even the rounding of the run's integrals is unchanged.

Per interval: the system's arrivals, finished attempts, successes, failures and retries
(counted since time 0, across the warm-up), its time-average population, the p50 and p99
latency of the successes in it; per station its queue and busy workers at the sample.
The single-station recursion, which has no clock, files each customer's events into the
intervals they fall in instead (:func:`count`, :func:`stay`, :func:`hold`).
Memory is one row per sample plus one latency sketch, however many transactions run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from paysim.engine.compiled.codes import (
    N_FAILURES,
    SR_ARRIVED,
    SR_FAILED,
    SR_FINISHED,
    SR_IN,
    SR_RETRIES,
    SR_SUCCEEDED,
    SRF_AREA_IN,
    SRF_LAST,
    ST_BUSY,
    ST_BUSY_WORKERS,
    ST_HELD,
    ST_IN,
    ST_WORKERS,
)
from paysim.engine.compiled.primitives import helper, jit

# columns of a sample row: the interval's counts, population area and latency percentiles,
# then per station (PER_STATION columns, offsets S_*) its queue, busy workers, (an executor's)
# threads, workers held on calls, cores in use and workers alive at the sample instant
C_ARRIVED, C_FINISHED, C_SUCCEEDED, C_FAILED, C_RETRIES, C_AREA, C_P50, C_P99, C_STATIONS = range(9)
S_QUEUE, S_BUSY, S_THREADS, S_HELD, S_CPU, S_WORKERS, PER_STATION = range(7)
COUNTS = C_AREA + 1          # the columns a sample takes as differences since the previous one
FAILURES = N_FAILURES        # outcome columns of the stream table from SR_FAILED


class Series(NamedTuple):
    """Where one replication's samples go (a dummy of one row when none is asked for)."""
    times: np.ndarray    # the sample instants, then +inf
    rows: np.ndarray     # one row per sample (C_* columns)
    next: np.ndarray     # int (1,): the next sample to take
    last: np.ndarray     # the COUNTS columns' totals at the previous sample
    lat: np.ndarray      # int: the interval's success latencies by sketch bucket, then those below MIN_VALUE
    level: np.ndarray    # int (samples + 1, 2): the recursion's in-station and busy changes per sample


def sample_times(horizon_s: float, interval_s: float) -> np.ndarray:
    """The SimPy engine's sample instants: k * interval below the horizon, and the horizon
    itself when the intervals reach it (paysim.engine.simpy_engine._Engine.run)."""
    samples = int(horizon_s / interval_s + 1e-9)
    times = [k * interval_s for k in range(1, samples + 1) if k * interval_s < horizon_s]
    if samples and samples * interval_s >= horizon_s - 1e-9:
        times.append(horizon_s)
    return np.array(times, float)


def new_series(horizon_s: float, interval_s: float | None, stations: int, nbuckets: int) -> Series:
    """Empty sample rows for a run (one unused row when ``interval_s`` is None)."""
    times = sample_times(horizon_s, interval_s) if interval_s else np.zeros(0)
    n = max(times.size, 1)
    return Series(np.append(times, math.inf), np.zeros((n, C_STATIONS + PER_STATION * stations)), np.zeros(1, np.int64),
                  np.zeros(COUNTS), np.zeros(nbuckets + 1 if interval_s else 1, np.int64),
                  np.zeros((n + 1, 2), np.int64))


@jit(inline=True)
def sampling(ser):
    return ser.lat.shape[0] > 1


@jit(inline=True)
def quantile(lat, q, log_gamma, offset):
    """As paysim.sketch.QuantileSketch.quantile, from the bucket counts ``lat[:-1]`` and zeros ``lat[-1]``."""
    zeros = lat[lat.shape[0] - 1]
    total = zeros
    for b in range(lat.shape[0] - 1):
        total += lat[b]
    if total == 0:
        return np.nan
    rank = q * (total - 1)
    if rank < zeros:
        return 0.0
    target = rank - zeros
    cumulative = 0
    b = 0
    while b < lat.shape[0] - 2:
        cumulative += lat[b]
        if cumulative > target:
            break
        b += 1
    return 2.0 * math.exp((b + offset) * log_gamma) / (math.exp(log_gamma) + 1.0)


@jit(inline=True)
def close_latencies(ser, j, log_gamma, offset):
    """Sample ``j``'s latency percentiles; the sketch starts again for the next interval."""
    ser.rows[j, C_P50] = quantile(ser.lat, 0.5, log_gamma, offset)
    ser.rows[j, C_P99] = quantile(ser.lat, 0.99, log_gamma, offset)
    ser.lat[:] = 0


@helper
def latency(lat, tiny, b):
    """A success's latency (bucket ``b``, or below the sketch's least value) in the interval's
    sketch ``lat`` (the series' field; a single entry when none is sampled)."""
    if lat.shape[0] > 1:
        lat[lat.shape[0] - 1 if tiny else b] += 1


@jit(inline=True)
def _totals(sr_i, sr_f, now, out):
    """The system's counts since the window opened, and its population area up to ``now``,
    read without advancing the accumulators."""
    out[:] = 0.0
    for s in range(sr_i.shape[0]):
        out[C_ARRIVED] += sr_i[s, SR_ARRIVED]
        out[C_FINISHED] += sr_i[s, SR_FINISHED]
        out[C_SUCCEEDED] += sr_i[s, SR_SUCCEEDED]
        for r in range(FAILURES):
            out[C_FAILED] += sr_i[s, SR_FAILED + r]
        out[C_RETRIES] += sr_i[s, SR_RETRIES]
        out[C_AREA] += sr_f[s, SRF_AREA_IN] + sr_i[s, SR_IN] * (now - sr_f[s, SRF_LAST])


@helper
def due(times, nxt, t, seq, seq_after):
    """Whether the next sample (``times[nxt[0]]``) comes before the event (t, seq): earlier, or
    at the same instant and that event scheduled after the samples were (the SimPy engine
    schedules its samples after the stations' slowdowns, outages and schedules, before
    everything else)."""
    at = times[nxt[0]]
    return at < t or (at == t and seq >= seq_after)


@jit
def take(ser, st_i, threads, computing, cores, sr_i, sr_f, log_gamma, offset):
    """Take the next sample, of the state as it is (the event loop calls this between events);
    ``computing``: per station the jobs on its ``cores`` (paysim.engine.compiled.cores)."""
    j = ser.next[0]
    now = ser.times[j]
    row = ser.rows[j]
    _totals(sr_i, sr_f, now, row)
    for c in range(COUNTS):
        current = row[c]
        row[c] = current - ser.last[c]
        ser.last[c] = current
    close_latencies(ser, j, log_gamma, offset)
    for st in range(st_i.shape[0]):
        row[C_STATIONS + PER_STATION * st + S_QUEUE] = st_i[st, ST_IN] - st_i[st, ST_BUSY]
        # busy workers: at a batch station those processing batches (none busy: no item in service)
        row[C_STATIONS + PER_STATION * st + S_BUSY] = (st_i[st, ST_BUSY_WORKERS] if st_i[st, ST_BUSY_WORKERS] > 0
                                                  else st_i[st, ST_BUSY])
        row[C_STATIONS + PER_STATION * st + S_THREADS] = threads[st]
        row[C_STATIONS + PER_STATION * st + S_HELD] = st_i[st, ST_HELD]
        row[C_STATIONS + PER_STATION * st + S_CPU] = min(computing[st], cores[st])
        row[C_STATIONS + PER_STATION * st + S_WORKERS] = st_i[st, ST_WORKERS]   # as a schedule or autoscaler set them
    ser.next[0] = j + 1


@jit
def take_until(ser, t, st_i, threads, computing, cores, sr_i, sr_f, log_gamma, offset):
    """Every sample due at or before ``t`` (the horizon, after the last event)."""
    while ser.times[ser.next[0]] <= t:
        take(ser, st_i, threads, computing, cores, sr_i, sr_f, log_gamma, offset)


@jit
def window_opened(ser, sr_i, sr_f, now):
    """The measurement window opens and the stream table restarts from zero: carry what it
    held, so that the series still counts from time 0. Call before the reset."""
    if sampling(ser):
        held = np.empty(COUNTS)
        _totals(sr_i, sr_f, now, held)
        for c in range(COUNTS):
            ser.last[c] -= held[c]


# the single-station recursion: each customer's events filed into their intervals

@helper
def interval_of(times, nxt, t):
    """The interval an event at ``t`` falls in (a sample reads the state before the events at
    its instant); the number of samples for one after the last sample. ``t`` is no earlier
    than the customer the recursion is at, whose interval is the next to close (``nxt[0]``):
    a few steps from there, else a binary search (as numpy.searchsorted, side "right")."""
    j = nxt[0]
    for _ in range(4):
        if times[j] > t:
            return j
        j += 1
    high = times.shape[0] - 1     # the first sample after t lies in [j, high] (times[high] is +inf)
    while j < high:
        middle = (j + high) // 2
        if times[middle] > t:
            high = middle
        else:
            j = middle + 1
    return j


# (the recursion passes the series' arrays themselves: reading them from the tuple for
# every customer costs numba a reference count each time)

@helper
def count(times, rows, nxt, t, column):
    """One event of ``column`` (C_ARRIVED ... C_RETRIES) at time ``t``."""
    j = interval_of(times, nxt, t)
    if j < times.shape[0] - 1:
        rows[j, column] += 1.0


@helper
def stay(times, rows, level, nxt, a, leave, start):
    """A customer in the station over [a, leave), served from ``start`` (``leave`` when never):
    its share of each interval's population area, and the samples that see it inside or busy."""
    n = times.shape[0] - 1
    first, last = interval_of(times, nxt, a), interval_of(times, nxt, leave)
    for j in range(first, min(last + 1, n)):
        low = times[j - 1] if j > 0 else 0.0
        rows[j, C_AREA] += min(leave, times[j]) - max(a, low)
    level[first, 0] += 1
    level[last, 0] -= 1
    if start < leave:
        level[interval_of(times, nxt, start), 1] += 1
        level[last, 1] -= 1


@jit(inline=True)
def hold(pt, pb, n, t, b):
    """Hold a success (its time, its latency's bucket; -1 below the least value) until its
    interval closes: the recursion meets customers in arrival order, not finishing order.
    Returns the arrays (grown when full)."""
    if n == pt.shape[0]:
        pt = np.concatenate((pt, np.empty(n)))
        pb = np.concatenate((pb, np.empty(n, np.int64)))
    pt[n], pb[n] = t, b
    return pt, pb


@jit
def close_before(ser, t, pt, pb, n, log_gamma, offset):
    """Close every interval whose sample comes at or before ``t`` (no customer met later can
    finish in it): its held successes go into its sketch. Returns how many stay held."""
    zeros = ser.lat.shape[0] - 1
    while ser.next[0] < ser.times.shape[0] - 1 and ser.times[ser.next[0]] <= t:
        j = ser.next[0]
        kept = 0                  # (at most those in the station: a short scan per interval)
        for i in range(n):
            if pt[i] < ser.times[j]:
                ser.lat[zeros if pb[i] < 0 else pb[i]] += 1
            else:
                pt[kept], pb[kept] = pt[i], pb[i]
                kept += 1
        n = kept
        close_latencies(ser, j, log_gamma, offset)
        ser.next[0] = j + 1
    return n


@jit
def settle_levels(ser, workers):
    """The recursion's station columns: the samples' in-station and busy counts from their
    changes, and its ``workers`` (constant there)."""
    inside = busy = 0
    for j in range(ser.times.shape[0] - 1):
        inside += ser.level[j, 0]
        busy += ser.level[j, 1]
        ser.rows[j, C_STATIONS + S_QUEUE] = inside - busy
        ser.rows[j, C_STATIONS + S_BUSY] = busy
        ser.rows[j, C_STATIONS + S_WORKERS] = workers


def series_rows(ser: Series, stations: Sequence[str], executors: Sequence[bool], held: Sequence[bool] = (),
                cores: Sequence[int] = (), unlimited: Sequence[bool] = ()) -> list[dict[str, float]]:
    """The samples as paysim.timeseries.SeriesRecorder's rows (the same keys, in its order);
    ``executors``: per station whether it has one (its threads are sampled too, and are its
    workers); ``held``: whether it has calls (its held workers too); ``cores``: its cores, 0
    for none (their share in use too); ``unlimited``: whether its workers are (no count of
    workers alive then)."""
    out, previous = [], 0.0
    for j, now in enumerate(ser.times[:-1]):
        elapsed = now - previous
        if elapsed <= 0:
            continue
        values = ser.rows[j]
        row = {"t": float(now),
               "system.arrival_rate": values[C_ARRIVED] / elapsed, "system.throughput": values[C_FINISHED] / elapsed,
               "system.goodput": values[C_SUCCEEDED] / elapsed, "system.failures_per_s": values[C_FAILED] / elapsed,
               "system.retries_per_s": values[C_RETRIES] / elapsed, "system.L": values[C_AREA] / elapsed,
               "system.latency.p50": values[C_P50], "system.latency.p99": values[C_P99]}
        for i, name in enumerate(stations):
            row[f"stations.{name}.queue"] = values[C_STATIONS + PER_STATION * i + S_QUEUE]
            row[f"stations.{name}.busy"] = values[C_STATIONS + PER_STATION * i + S_BUSY]
            if executors[i]:
                row[f"stations.{name}.threads"] = values[C_STATIONS + PER_STATION * i + S_THREADS]
            if held and held[i]:
                row[f"stations.{name}.held"] = values[C_STATIONS + PER_STATION * i + S_HELD]
            if cores and cores[i]:
                row[f"stations.{name}.cpu_utilization"] = values[C_STATIONS + PER_STATION * i + S_CPU] / cores[i]
            if not (unlimited and unlimited[i]):
                row[f"stations.{name}.workers"] = values[C_STATIONS + PER_STATION * i
                                                         + (S_THREADS if executors[i] else S_WORKERS)]
        out.append({key: float(value) for key, value in row.items()})
        previous = now
    return out
