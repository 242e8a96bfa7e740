"""Transients: a station that starts with a backlog, and how long its queue takes to drain.

A ``backlog`` puts requests at a station at time 0 (what an outage left behind). They are
requests of one arrival stream, arrived at time 0: they count in its arrivals, throughput,
failures and latency (measured from 0) like any other. ``drain_time`` is, per replication,
the first time after 0 at which nobody waits in the station's queue (the requests in
service do not count: the queue is what waits for a worker). A replication whose queue
never empties within the horizon has no drain time: it is counted in ``not_drained`` (the
share of replications) and left out of the mean, never averaged in as the horizon.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from paysim.scenario import Scenario

Problem = tuple[tuple[str | int, ...], str]


def backlog_stream(scenario: Scenario, station: str) -> str:
    """The stream a station's backlog belongs to: its ``stream``, else the first stream (in the
    file's order) that can reach the station (validation makes sure there is one)."""
    backlog = scenario.stations[station].backlog
    assert backlog is not None
    if backlog.stream is not None:
        return backlog.stream
    from paysim.network import Network  # reads the scenario models: imported late, no cycle

    network = Network(scenario)
    return next(name for name in scenario.arrivals if station in network.visited(name))


def backlog_problems(scenario: Scenario) -> list[Problem]:
    """What makes a scenario's backlogs unusable, as (key path, message)."""
    found: list[Problem] = []
    backlogs = {name: s.backlog for name, s in scenario.stations.items() if s.backlog is not None}
    if not backlogs:
        return found
    from paysim.network import Network

    network = Network(scenario)
    for name, backlog in backlogs.items():
        path: tuple[str | int, ...] = ("stations", name, "backlog")
        reaching = [stream for stream in scenario.arrivals if name in network.visited(stream)]
        if backlog.stream is not None:
            if backlog.stream not in scenario.arrivals:
                found.append((path + ("stream",), (f"unknown arrival stream {backlog.stream!r}; expected one of "
                                                  f"{', '.join(scenario.arrivals)}")))
                continue
            if backlog.stream not in reaching:
                found.append((path + ("stream",), f"stream {backlog.stream!r} never reaches {name!r}"))
                continue
        elif not reaching:
            found.append((path, f"no arrival stream reaches {name!r}, so its backlog would belong to none"))
            continue
        stream = backlog.stream or reaching[0]
        if scenario.arrivals[stream].clients is not None:
            found.append((path, (f"stream {stream!r} is a closed population: its clients cannot have more requests "
                                "than they are; give a backlog to an open stream ('stream: NAME')")))
    if scenario.warmup != 0:
        warmup = "auto" if scenario.warmup is None else f"{scenario.warmup:g}s"
        found.append((("warmup",), (f"a warm-up ({warmup}) would discard the transient that "
                                   f"stations.{next(iter(backlogs))}.backlog starts; set warmup: 0")))
    return found


def backlog_rows(scenario: Scenario) -> list[str]:
    """The stations whose drain is measured."""
    return [name for name, station in scenario.stations.items() if station.backlog is not None]


def drain_row(prefix: str, drained_at: float | None) -> dict[str, float]:
    """A station's drain metrics for one replication (``drained_at`` None: not within the horizon)."""
    return {f"{prefix}.drain_time": math.nan if drained_at is None else drained_at,
            f"{prefix}.not_drained": float(drained_at is None)}


def undrained(summary: Mapping[str, Any]) -> list[str]:
    """The backlog stations whose queue had not drained by the horizon in some replication (their
    requests still inside at the end: Little's law cannot hold over such a window)."""
    return [name.split(".")[1] for name, value in summary.items()
            if name.endswith(".not_drained") and name.startswith("stations.") and value.mean > 0]


def drain_notes(scenario: Scenario, rows: Sequence[Mapping[str, float]]) -> list[str]:
    """Say how many replications never drained, so that a mean over the others is read as such."""
    notes = []
    for name in backlog_rows(scenario):
        missing = sum(row.get(f"stations.{name}.not_drained", 0.0) > 0 for row in rows)
        if missing == len(rows):
            notes.append(f"stations.{name}.drain_time: the queue did not drain within the horizon in any of the "
                         f"{len(rows)} replications (no drain time; lengthen the horizon or add workers)")
        elif missing:
            notes.append(f"stations.{name}.drain_time: not drained within the horizon in {missing} of {len(rows)} "
                         f"replications; the mean and CI are over the {len(rows) - missing} that drained, "
                         "so they understate the drain")
    return notes
