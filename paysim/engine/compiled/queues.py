"""A station's waiting line in the compiled engine, in FIFO, LIFO or non-preemptive priority
order (smaller priority first, FIFO within a priority), as paysim.engine.station.Queue
orders it.

The waiting transactions are one doubly linked list through tx.link (next, previous),
head ST_HEAD and tail ST_TAIL, so that work withdrawn from the middle (``on_timeout:
cancel``) leaves in O(1). Everyone joins at the tail except under priority, where the list
stays sorted by (priority rank, arrival): a transaction joins behind the last waiting one
of its rank or of a more urgent one, found through acc.queue_last[station, rank] (the last
waiting transaction of each rank, -1 for none). A freed worker serves the head, or under
LIFO the tail.
"""

from __future__ import annotations

import numpy as np

from paysim.engine.compiled.balance import units
from paysim.engine.compiled.codes import FIFO, LIFO, PRIORITY, ST_HEAD, ST_TAIL, ST_WAITING, WAITING
from paysim.engine.compiled.primitives import jit
from paysim.scenario import Scenario, Station

DISCIPLINES = {"fifo": FIFO, "lifo": LIFO, "priority": PRIORITY}


def unsupported(name: str, station: Station) -> str | None:
    """Why the compiled engine cannot run this station's discipline (None when it can):
    executors and batches keep their own lines."""
    if station.discipline != "fifo":
        for key in ("executor", "batch"):
            if getattr(station, key) is not None:
                return f"stations.{name}.discipline with {key} needs the SimPy engine"
    return None


def priority_ranks(scenario: Scenario) -> list[int]:
    """The streams' distinct priorities, most urgent (smallest) first."""
    return sorted({arrival.priority for arrival in scenario.arrivals.values()})


def queue_tables(scenario: Scenario) -> dict[str, np.ndarray]:
    """The Model's columns of queue order: per station instance its discipline, per stream its rank."""
    ranks = {priority: rank for rank, priority in enumerate(priority_ranks(scenario))}
    return {"discipline": np.array([DISCIPLINES[spec.discipline] for _, _, spec in units(scenario)], np.int64),
            "rank": np.array([ranks[arrival.priority] for arrival in scenario.arrivals.values()], np.int64)}


@jit(inline=True)
def _insert_after(acc, st, tx, x, ahead):
    """Link ``x`` in behind ``ahead`` (-1: at the head)."""
    following = acc.st_i[st, ST_HEAD] if ahead == -1 else tx.link[ahead, 0]
    tx.link[x, 0], tx.link[x, 1] = following, ahead
    if ahead == -1:
        acc.st_i[st, ST_HEAD] = x
    else:
        tx.link[ahead, 0] = x
    if following == -1:
        acc.st_i[st, ST_TAIL] = x
    else:
        tx.link[following, 1] = x


@jit(inline=True)
def enqueue(m, acc, st, tx, x):
    """``x`` waits at station ``st``, in the order of the station's discipline."""
    tx.state[x] = WAITING
    acc.st_i[st, ST_WAITING] += 1
    if m.discipline[st] != PRIORITY:
        _insert_after(acc, st, tx, x, acc.st_i[st, ST_TAIL])
        return
    rank = m.rank[tx.stream[x]]
    ahead = -1
    r = rank
    while r >= 0 and ahead == -1:
        ahead = acc.queue_last[st, r]
        r -= 1
    _insert_after(acc, st, tx, x, ahead)
    acc.queue_last[st, rank] = x


@jit(inline=True)
def unlink(m, acc, st, tx, x):
    """Take ``x`` out of the station's queue (to serve it, or withdrawn), so its slot can be
    reused at once."""
    following, previous = tx.link[x, 0], tx.link[x, 1]
    if m.discipline[st] == PRIORITY:
        rank = m.rank[tx.stream[x]]
        if acc.queue_last[st, rank] == x:   # the last of its rank: the one before it, if of the same rank
            same = previous != -1 and m.rank[tx.stream[previous]] == rank
            acc.queue_last[st, rank] = previous if same else -1
    if previous == -1:
        acc.st_i[st, ST_HEAD] = following
    else:
        tx.link[previous, 0] = following
    if following == -1:
        acc.st_i[st, ST_TAIL] = previous
    else:
        tx.link[following, 1] = previous
    acc.st_i[st, ST_WAITING] -= 1


@jit(inline=True)
def front(m, acc, st):
    """Whom a freed worker serves next (-1: nobody waits): the head, under LIFO the tail."""
    return acc.st_i[st, ST_TAIL] if m.discipline[st] == LIFO else acc.st_i[st, ST_HEAD]
