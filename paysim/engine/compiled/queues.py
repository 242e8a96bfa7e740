"""A station's waiting line in the compiled engine, in FIFO, LIFO or non-preemptive priority
order (smaller priority first, FIFO within a priority), as paysim.engine.station.Queue
orders it.

The waiting transactions are one doubly linked list through txi (TXI_NEXT, TXI_PREV),
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
from paysim.engine.compiled.codes import (
    FIFO,
    LIFO,
    PRIORITY,
    ST_HEAD,
    ST_TAIL,
    ST_WAITING,
    TXI_NEXT,
    TXI_PREV,
    TXI_STATE,
    TXI_STREAM,
    WAITING,
)
from paysim.engine.compiled.primitives import helper
from paysim.scenario import Scenario, Station

DISCIPLINES = {"fifo": FIFO, "lifo": LIFO, "priority": PRIORITY}


def unsupported(name: str, station: Station) -> str | None:
    """Why the compiled engine cannot run this station's discipline (None when it can):
    batches keep their own lines, and an executor's discard_oldest under priority looks for
    the oldest across the priorities (SimPy scans its heap)."""
    if station.discipline != "fifo" and station.batch is not None:
        return f"stations.{name}.discipline with batch needs the SimPy engine"
    if station.discipline == "priority" and station.executor is not None \
            and station.executor.rejection == "discard_oldest":
        return f"stations.{name}.discipline: priority with an executor's discard_oldest needs the SimPy engine"
    return None


def priority_ranks(scenario: Scenario) -> list[int]:
    """The streams' distinct priorities, most urgent (smallest) first."""
    return sorted({arrival.priority for arrival in scenario.arrivals.values()})


def queue_tables(scenario: Scenario) -> dict[str, np.ndarray]:
    """The Model's columns of queue order: per station instance its discipline, per stream its rank."""
    ranks = {priority: rank for rank, priority in enumerate(priority_ranks(scenario))}
    return {"discipline": np.array([DISCIPLINES[spec.discipline] for _, _, spec in units(scenario)], np.int64),
            "rank": np.array([ranks[arrival.priority] for arrival in scenario.arrivals.values()], np.int64)}


@helper
def link_after(owners, row, head, tail, txi, x, ahead):
    """Link ``x`` in behind ``ahead`` (-1: at the head) of a doubly linked list through txi
    whose ends are ``owners[row, head]`` and ``owners[row, tail]`` (-1: empty): a station's
    queue, or a batch's items (paysim.engine.compiled.batch)."""
    following = owners[row, head] if ahead == -1 else txi[ahead, TXI_NEXT]
    txi[x, TXI_NEXT], txi[x, TXI_PREV] = following, ahead
    if ahead == -1:
        owners[row, head] = x
    else:
        txi[ahead, TXI_NEXT] = x
    if following == -1:
        owners[row, tail] = x
    else:
        txi[following, TXI_PREV] = x


@helper
def remove(owners, row, head, tail, txi, x):
    """Take ``x`` out of such a list."""
    following, previous = txi[x, TXI_NEXT], txi[x, TXI_PREV]
    if previous == -1:
        owners[row, head] = following
    else:
        txi[previous, TXI_NEXT] = following
    if following == -1:
        owners[row, tail] = previous
    else:
        txi[following, TXI_PREV] = previous


@helper
def enqueue(st_i, txi, st, x, discipline, rank, queue_last):
    """``x`` waits at station ``st``, in the order of the station's ``discipline`` (per stream
    its ``rank``; ``queue_last``: see above)."""
    txi[x, TXI_STATE] = WAITING
    st_i[st, ST_WAITING] += 1
    if discipline[st] != PRIORITY:
        link_after(st_i, st, ST_HEAD, ST_TAIL, txi, x, st_i[st, ST_TAIL])
        return
    own = rank[txi[x, TXI_STREAM]]
    ahead = -1
    r = own
    while r >= 0 and ahead == -1:
        ahead = queue_last[st, r]
        r -= 1
    link_after(st_i, st, ST_HEAD, ST_TAIL, txi, x, ahead)
    queue_last[st, own] = x


@helper
def unlink(st_i, txi, st, x, discipline, rank, queue_last):
    """Take ``x`` out of the station's queue (to serve it, or withdrawn), so its slot can be
    reused at once."""
    if discipline[st] == PRIORITY:
        own = rank[txi[x, TXI_STREAM]]
        if queue_last[st, own] == x:   # the last of its rank: the one before it, if of the same rank
            previous = txi[x, TXI_PREV]
            same = previous != -1 and rank[txi[previous, TXI_STREAM]] == own
            queue_last[st, own] = previous if same else -1
    remove(st_i, st, ST_HEAD, ST_TAIL, txi, x)
    st_i[st, ST_WAITING] -= 1


@helper
def front(st_i, st, discipline):
    """Whom a freed worker serves next (-1: nobody waits): the head, under LIFO the tail."""
    return st_i[st, ST_TAIL] if discipline[st] == LIFO else st_i[st, ST_HEAD]
