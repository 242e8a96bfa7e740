"""One memory and work budget per paysim command, divided among the replications it runs at once.

Memory is counted in *units* of about what one transaction in flight costs (a few hundred
bytes): every transaction in flight, every client of a closed population (each is a
resident process), every instance of a station, and every 16 workers (the compiled engine
keeps a free-time per worker). ``MEMORY_UNITS`` is the whole command's; with ``jobs``
replications running at once each gets its share, so ``-j 4`` cannot take four times the
memory of ``-j 1``. What a scenario holds from the start (clients, instances, workers) is
checked before anything runs; transactions in flight are capped while it runs (the
engines' ``max_in_flight``), which stops an overloaded system early.

Work is counted in events: arrivals (at a closed population's upper-bound throughput) and
batch timers (``batch: {every: ...}`` wakes each instance every period even when idle).
A run or sweep whose events exceed ``MAX_EVENTS`` could not finish and is refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from paysim.errors import PaysimError, one_line
from paysim.preflight import expected_arrivals
from paysim.scenario import Scenario

MEMORY_UNITS = 5_000_000     # about 1-3 GB: transactions, clients and instances alive at once, all jobs together
WORKERS_PER_UNIT = 16
MAX_EVENTS = 1e11            # days of simulation even compiled: a typo, not a plan
LONG_EVENTS = 1e8            # above this a run is worth a note that it is long


class BudgetError(PaysimError):
    """A run that would exceed the memory or work budget."""


def per_replication(jobs: int) -> int:
    """Memory units one replication may use when ``jobs`` replications run at once."""
    return max(1, MEMORY_UNITS // max(1, jobs))


@dataclass(frozen=True)
class Resident:
    """What a scenario holds in memory from its start, by the key that asks for it."""

    key: str
    units: float
    what: str


def resident(scenario: Scenario) -> list[Resident]:
    """Clients, instances and workers the scenario keeps alive for the whole run."""
    held = [Resident(f"arrivals.{name}.clients", float(arrival.clients), f"{arrival.clients:,} clients")
            for name, arrival in scenario.arrivals.items() if arrival.clients is not None]
    for name, station in scenario.stations.items():
        if station.unlimited:   # a worker exists only while it holds a transaction (counted in flight)
            held.append(Resident(f"stations.{name}.workers", 1.0, "unlimited workers"))
            continue
        held.append(Resident(f"stations.{name}.instances", station.instances + station.capacity / WORKERS_PER_UNIT,
                             f"{station.instances:,} instances of {station.capacity // station.instances:,} workers"))
        if station.backlog is not None:   # placed at time 0 (paysim.transient)
            held.append(Resident(f"stations.{name}.backlog", float(station.backlog_size),
                                 f"{station.backlog_size:,} requests of a backlog"))
    return held


def expected_events(scenario: Scenario) -> float:
    """Events one replication is expected to process: arrivals and batch timers."""
    timers = sum(station.instances * scenario.horizon / station.batch.every
                 for station in scenario.stations.values() if station.batch is not None and station.batch.every)
    return expected_arrivals(scenario) + timers


def check(scenario: Scenario, where: str, replications: int, jobs: int, at_once: int | None = None) -> float:
    """Refuse a run whose scenario alone outgrows its share of memory (``at_once`` replications
    running together, by default as many as ``jobs`` allows), or whose events over all
    ``replications`` could not finish; return the events it is expected to process."""
    at_once = at_once or min(jobs, replications)
    share = per_replication(at_once)
    held = resident(scenario)
    total = math.fsum(item.units for item in held)
    if total > share:
        biggest = max(held, key=lambda item: item.units)
        running = f" for each of {at_once} replications at once" if at_once > 1 else ""
        raise BudgetError(one_line(
            f"{where}: {biggest.key}: {biggest.what} need more memory than the budget allows{running} "
            f"(about {total:,.0f} transactions' worth against {share:,}); "
            + ("use fewer --jobs or " if at_once > 1 else "") + "make the scenario smaller"))
    events = expected_events(scenario) * replications
    if not events < MAX_EVENTS:
        raise BudgetError(one_line(
            f"{where}: this run would process about {events:.3g} events (arrivals and batch timers) over "
            f"{replications} replications, more than can finish; shorten the horizon or lower the rate"))
    return events


def check_jobs(scenarios: Sequence[tuple[str, Scenario]], replications: int, jobs: int, where: str) -> float:
    """``check`` for a command's jobs: ``replications`` of each (place, scenario) -- one for a
    run, a sweep's points -- up to ``jobs`` at once as paysim.execution runs them; also refuse
    events over all of them that could not finish. Return the events expected."""
    at_once = max(1, min(jobs, len(scenarios) * replications))
    events = math.fsum(check(scenario, place, replications, jobs, at_once) for place, scenario in scenarios)
    if not events < MAX_EVENTS:
        raise BudgetError(f"{where} would process about {events:.3g} events over {len(scenarios)} points, more "
                          "than can finish; shorten the horizon or the grid")
    return events
