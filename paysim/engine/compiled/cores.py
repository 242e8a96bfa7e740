"""Workers that share CPU cores (``cores: N``) in the compiled engine: processor sharing, as
paysim.engine.cores.Cores does it, with the same arithmetic in the same order (so the same
sample path).

Per station a virtual clock V (dV/dt = min(1, N/n) for n computing jobs), a min-heap of the
computing jobs by (tag, sequence number), tag = V at the start + the job's work, and one
pending CORES_DONE event for the smallest tag, whose generation is the station's version
(rescheduling bumps it, which makes the earlier event stale). Helpers take plain arrays
(see :mod:`paysim.engine.compiled.state`). A scenario without cores pays one branch per
service start.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from paysim.engine.compiled.codes import CORES_DONE, DONE_SERVICE, TXI_GEN
from paysim.engine.compiled.primitives import draw, helper, jit
from paysim.engine.compiled.state import push
from paysim.scenario import Scenario

# per station float columns: the virtual clock, when it was last brought up to date, the
# integral of cores in use over the measurement window and when it was last advanced
CF_V, CF_LAST, CF_AREA, CF_AREA_LAST, CF_WIDTH = range(5)
# per station integer columns: computing jobs, sequence numbers given, the completion event's version
CI_N, CI_SEQ, CI_VERSION, CI_WIDTH = range(4)
# a job's columns in the per-station heap (floats: slots and sequence numbers are exact below 2**53)
J_TAG, J_SEQ, J_SLOT, J_WIDTH = range(4)


class Cpu(NamedTuple):
    """The stations' cores (rows per unit, as the station tables)."""
    f: np.ndarray       # (units, CF_WIDTH)
    i: np.ndarray       # int (units, CI_WIDTH)
    jobs: np.ndarray    # (units, room, J_WIDTH): each station's heap of computing jobs


def core_counts(stations) -> np.ndarray:
    """The Model's ``cores`` column: per unit its cores, 0 where the workers share none."""
    return np.array([spec.cores or 0 for spec in stations], np.int64)


ROOM = 1 << 16    # jobs a heap of unlimited workers has room for from the start (the kernel grows it beyond)


def build_cpu(scenario: Scenario, units: int) -> Cpu:
    """Empty cores tables; each heap has room for all of a station's workers (ROOM when they
    are unlimited: the kernel grows the heaps for more, one job at a time, since only an
    arrival starts an unlimited worker)."""
    room = max([min(s.workers, ROOM) if s.unlimited else s.workers for s in scenario.stations.values() if s.cores]
               or [0]) + 2
    return Cpu(np.zeros((units, CF_WIDTH)), np.zeros((units, CI_WIDTH), np.int64), np.zeros((units, room, J_WIDTH)))


@helper
def full(cpu_i, jobs):
    """Some station's heap has room for one more job only (never with no more workers than
    it was made for: see build_cpu)."""
    room = jobs.shape[1] - 1
    for st in range(cpu_i.shape[0]):
        if cpu_i[st, CI_N] >= room:
            return True
    return False


@jit(inline=True)
def grown(jobs):
    """Twice the room for each station's jobs."""
    more = np.zeros((jobs.shape[0], 2 * jobs.shape[1], J_WIDTH))
    more[:, :jobs.shape[1], :] = jobs
    return more


@helper
def _before(jobs, st, a, b):
    return jobs[st, a, J_TAG] < jobs[st, b, J_TAG] or (
        jobs[st, a, J_TAG] == jobs[st, b, J_TAG] and jobs[st, a, J_SEQ] < jobs[st, b, J_SEQ])


@helper
def _swap(jobs, st, a, b):
    for c in range(J_WIDTH):
        jobs[st, a, c], jobs[st, b, c] = jobs[st, b, c], jobs[st, a, c]


@helper
def _sift_up(jobs, st, i):
    while i > 0:
        parent = (i - 1) >> 1
        if not _before(jobs, st, i, parent):
            break
        _swap(jobs, st, i, parent)
        i = parent


@helper
def _sift_down(jobs, st, i, n):
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and _before(jobs, st, child + 1, child):
            child += 1
        if not _before(jobs, st, child, i):
            break
        _swap(jobs, st, i, child)
        i = child


@helper
def _remove_at(cpu_i, jobs, st, i):
    """Take entry i out of the station's heap (the last entry takes its place)."""
    n = cpu_i[st, CI_N] - 1
    cpu_i[st, CI_N] = n
    if i != n:
        for c in range(J_WIDTH):
            jobs[st, i, c] = jobs[st, n, c]
        _sift_up(jobs, st, i)
        _sift_down(jobs, st, i, n)


@helper
def _rate(n, cores):
    return 1.0 if n <= cores else cores / n


@helper
def _area(cpu_f, n, cores, st, now):
    """The integral of cores in use, up to ``now``."""
    cpu_f[st, CF_AREA] += min(n, cores) * (now - cpu_f[st, CF_AREA_LAST])
    cpu_f[st, CF_AREA_LAST] = now


@helper
def _advance(cpu_f, cpu_i, cores, st, now):
    n = cpu_i[st, CI_N]
    if n > 0:
        cpu_f[st, CF_V] += (now - cpu_f[st, CF_LAST]) * _rate(n, cores)
    cpu_f[st, CF_LAST] = now
    _area(cpu_f, n, cores, st, now)


@helper
def _reschedule(cpu_f, cpu_i, jobs, cores, heap, size, st, now):
    """The number computing changed: schedule the next completion again."""
    cpu_i[st, CI_VERSION] += 1
    n = cpu_i[st, CI_N]
    if n > 0:
        delay = (jobs[st, 0, J_TAG] - cpu_f[st, CF_V]) / _rate(n, cores)
        push(heap, size, now + max(delay, 0.0), CORES_DONE, st, cpu_i[st, CI_VERSION])


@helper
def add(cpu_f, cpu_i, jobs, cores, heap, size, st, x, work, now):
    """Slot ``x`` starts computing ``work`` seconds (at full speed) on station ``st``'s cores."""
    c = cores[st]
    _advance(cpu_f, cpu_i, c, st, now)
    cpu_i[st, CI_SEQ] += 1
    n = cpu_i[st, CI_N]
    jobs[st, n, J_TAG] = cpu_f[st, CF_V] + work
    jobs[st, n, J_SEQ] = cpu_i[st, CI_SEQ]
    jobs[st, n, J_SLOT] = x
    cpu_i[st, CI_N] = n + 1
    _sift_up(jobs, st, n)
    _reschedule(cpu_f, cpu_i, jobs, c, heap, size, st, now)


@helper
def remove(cpu_f, cpu_i, jobs, cores, heap, size, st, x, now):
    """Slot ``x`` stops computing before its work is done (withdrawn)."""
    c = cores[st]
    _advance(cpu_f, cpu_i, c, st, now)
    for i in range(cpu_i[st, CI_N]):
        if jobs[st, i, J_SLOT] == x:
            _remove_at(cpu_i, jobs, st, i)
            break
    _reschedule(cpu_f, cpu_i, jobs, c, heap, size, st, now)


@helper
def due(cpu_f, cpu_i, jobs, cores, heap, size, st, version, now):
    """A CORES_DONE event: the slot whose work is done (its service ends now), or -1 when
    the event is stale."""
    if version != cpu_i[st, CI_VERSION]:
        return -1
    c = cores[st]
    _area(cpu_f, cpu_i[st, CI_N], c, st, now)
    tag, x = jobs[st, 0, J_TAG], int(jobs[st, 0, J_SLOT])
    _remove_at(cpu_i, jobs, st, 0)
    cpu_f[st, CF_V] = tag
    cpu_f[st, CF_LAST] = now
    _reschedule(cpu_f, cpu_i, jobs, c, heap, size, st, now)
    return x


@helper(hot=True)
def serve(service, emp, rng, slow, cores, cpu_f, cpu_i, jobs, heap, size, txi, st, y, now):
    """``y``'s service at station ``st`` starts now: its work drawn, then done at full speed
    (a DONE_SERVICE event), or shared with the others computing on the station's cores."""
    work = draw(service, st, emp, rng) * slow[st]
    if cores[st] > 0:
        add(cpu_f, cpu_i, jobs, cores, heap, size, st, y, work, now)
    else:
        push(heap, size, now + work, DONE_SERVICE, y, txi[y, TXI_GEN])


@helper
def open_window(cpu_f, cpu_i, cores, now):
    """The measurement window opens: the integral of cores in use starts again."""
    for st in range(cpu_f.shape[0]):
        if cores[st] > 0:
            cpu_f[st, CF_AREA] = 0.0
            cpu_f[st, CF_AREA_LAST] = now


@helper
def close(cpu_f, cpu_i, cores, horizon):
    for st in range(cpu_f.shape[0]):
        if cores[st] > 0:
            _area(cpu_f, cpu_i[st, CI_N], cores[st], st, horizon)


def unsupported(name: str, station, scenario: Scenario) -> str | None:
    """Why the compiled engine cannot run this station's cores or unlimited workers (None when it can)."""
    if station.cores and any(name in other.parallel for other in scenario.stations.values()):
        return f"stations.{name}.cores: a parallel call to a station with cores needs the SimPy engine"
    if station.unlimited and station.outages:
        return f"stations.{name}.outages: an outage of unlimited workers needs the SimPy engine"
    # calls reach the cores through the Model's tables, which the kernel must then never grow
    if station.cores and station.unlimited and any(s.calls for s in scenario.stations.values()):
        return f"stations.{name}.cores: unlimited workers sharing cores beside calls need the SimPy engine"
    return None


def report(cpu: Cpu, scenario: Scenario, observers) -> None:
    """Hand each station's integral of cores in use to its observer (StationObserver.area_cpu)."""
    from paysim.engine.compiled.balance import units

    for u, (_, name, spec) in enumerate(units(scenario)):
        if spec.cores:
            observers[name].area_cpu = float(cpu.f[u, CF_AREA])
