"""Parallel calls in the compiled engine: after its service at a station with ``parallel``,
an attempt forks one call per branch station and waits for them (``join: all``) or for the
first good answer (``join: any``), as paysim.engine.simpy_engine's fork and branch_returned
do.

A call is a transaction slot of its own whose ``parent`` is the forked attempt. It visits
its branch station only, then answers; a call the join no longer needs is withdrawn from
its station's queue or service. Its queueing and service time count towards its
attempt's, once. Calls are not attempts: they are not in the stream's counts, in flight or
timed out; a forked attempt that times out under ``on_timeout: cancel`` withdraws them.
The loop sends a fork's calls one at a time (:func:`next_call`), so that a call refused
at once can decide the join before the others are sent, as in the SimPy engine. What runs
only at a fork or a join is compiled apart from the loop, not into it: the loop's common
path stays as fast as without parallel calls.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from paysim.engine.compiled.codes import (ERRORED, FORKED, LEFT, REJECTED, SERVING, TO_DONE, TO_ERROR, TO_REJECTED,
                                          TRAVEL, WAITING)
from paysim.engine.compiled.onward import route
from paysim.engine.compiled.primitives import jit
from paysim.engine.compiled.state import release_slot, take_slot
from paysim.engine.compiled.station import withdraw
from paysim.scenario import Scenario

ANSWERED = -1        # a call's outcome when it answers well (else ERRORED or REJECTED)


def fork_tables(scenario: Scenario, index: dict[str, int]) -> dict[str, np.ndarray]:
    """The Model's parallel-call fields: per station its branch stations in order (padded
    with -1), how many, and whether the first good answer is enough (``join: any``)."""
    stations = scenario.stations.values()
    width = max([len(s.parallel) for s in stations] + [1])
    calls_to = np.full((len(stations), width), -1, np.int64)
    for i, station in enumerate(stations):
        for j, branch in enumerate(station.parallel):
            calls_to[i, j] = index[branch]
    return {"calls_to": calls_to, "n_calls": np.array([len(s.parallel) for s in stations], np.int64),
            "join_any": np.array([s.join == "any" for s in stations], np.bool_)}


class Calls(NamedTuple):
    """Per transaction slot, its part in parallel calls (growing with the slots)."""
    parent: np.ndarray      # int: the forked attempt this call answers; -1 for an attempt
    pending: np.ndarray     # int: of a forked attempt, its calls not yet answered
    children: np.ndarray    # int (slots, width): of a forked attempt, its calls; -1 once absorbed


@jit(inline=True)
def new_calls(cap, m):
    width = m.calls_to.shape[1]
    return Calls(np.full(cap, -1, np.int64), np.zeros(cap, np.int64), np.full((cap, width), -1, np.int64))


@jit(inline=True)
def grown_calls(calls):
    """Twice the slots (as state.grown_txns); the new ones take part in no fork."""
    cap = calls.parent.shape[0]
    return Calls(np.concatenate((calls.parent, np.full(cap, -1, np.int64))),
                 np.concatenate((calls.pending, np.zeros(cap, np.int64))),
                 np.concatenate((calls.children, np.full(calls.children.shape, -1, np.int64))))


@jit
def fork(m, tx, calls, x, now):
    """Attempt ``x`` has finished its service at a station with parallel calls: one call
    per branch, not yet sent."""
    st = tx.station[x]
    for j in range(m.n_calls[st]):
        c = take_slot(tx)
        tx.stream[c], tx.origin[c], tx.attempt[c], tx.backoff[c] = tx.stream[x], tx.origin[x], tx.attempt[x], 0.0
        tx.entered[c], tx.arrived[c], tx.wait[c], tx.service[c] = now, now, 0.0, 0.0
        tx.state[c] = TRAVEL
        tx.gave_up[c] = False
        calls.parent[c] = x
        calls.children[x, j] = c
    calls.pending[x] = m.n_calls[st]
    tx.state[x] = FORKED


@jit(inline=True)
def next_call(m, tx, calls, p, j):
    """Call ``j`` of the fork of ``p`` to send: (its slot, its station, j + 1), or slot -1
    when there is no fork under way, the join has decided, or every call was sent."""
    if p < 0 or tx.state[p] != FORKED or j >= m.n_calls[tx.station[p]]:
        return -1, TO_DONE, j
    return calls.children[p, j], m.calls_to[tx.station[p], j], j + 1


@jit(inline=True)
def absorb(tx, calls, p, j):
    """Call ``j`` of ``p`` is over: its queueing and service time count towards ``p``'s; its slot is freed."""
    c = calls.children[p, j]
    tx.wait[p] += tx.wait[c]
    tx.service[p] += tx.service[c]
    calls.children[p, j] = -1
    calls.parent[c] = -1
    tx.state[c] = LEFT
    release_slot(tx, c)


@jit
def withdraw_calls(m, acc, tx, calls, heap, rngs, slow, down, p, now):
    """The join has decided (or ``p``'s client gave up): calls still queued or in service are
    withdrawn from their stations; every call still open is absorbed."""
    for j in range(m.n_calls[tx.station[p]]):
        c = calls.children[p, j]
        if c < 0:
            continue
        if tx.state[c] == WAITING or tx.state[c] == SERVING:
            withdraw(m, acc, tx.station[c], tx, c, heap, rngs, slow, down, now)
        absorb(tx, calls, p, j)


@jit(inline=True)
def outcome_of(target):
    """A call leaving its branch for ``target``: ANSWERED (TO_DONE), ERRORED or REJECTED."""
    if target == TO_DONE:
        return ANSWERED
    return ERRORED if target == TO_ERROR else REJECTED


@jit
def call_returned(m, acc, tx, calls, heap, rngs, slow, down, feats, c, outcome, now):
    """Call ``c`` answered (``outcome`` ANSWERED) or failed: the join decides, or waits.
    Returns the attempt to move on and where to (its next station, or TO_ERROR /
    TO_REJECTED when the join failed), or slot -1 while the join waits."""
    p = calls.parent[c]
    st = tx.station[p]
    j = 0
    while calls.children[p, j] != c:
        j += 1
    absorb(tx, calls, p, j)
    if tx.state[p] != FORKED:
        return -1, TO_DONE
    calls.pending[p] -= 1
    last = calls.pending[p] == 0
    if outcome == ANSWERED and (m.join_any[st] or last):
        withdraw_calls(m, acc, tx, calls, heap, rngs, slow, down, p, now)
        tx.state[p] = TRAVEL
        return p, route(m, acc, st, rngs, feats, p)
    if outcome != ANSWERED and (not m.join_any[st] or last):
        withdraw_calls(m, acc, tx, calls, heap, rngs, slow, down, p, now)
        tx.state[p] = TRAVEL
        return p, TO_ERROR if outcome == ERRORED else TO_REJECTED
    return -1, TO_DONE
