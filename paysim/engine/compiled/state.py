"""The compiled engine's mutable state: transaction slots and the event heap, as named
tuples of arrays that grow by doubling (numba passes them by reference; growing returns
a new tuple of the same type)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from paysim.engine.compiled.primitives import doubled, jit


class Txns(NamedTuple):
    """One slot per attempt in flight (or waiting to retry); a slot is reused once freed,
    and ``gen`` counts its reuses so that stale events for it are ignored."""
    stream: np.ndarray      # int: its arrival stream
    entered: np.ndarray     # when this attempt entered the system
    arrived: np.ndarray     # when it arrived at its current station
    started: np.ndarray     # when its service there started
    wait: np.ndarray        # its total wait in queues so far
    service: np.ndarray     # its total service so far
    state: np.ndarray       # int: TRAVEL, WAITING, SERVING, LEFT or BACKOFF
    station: np.ndarray     # int: its current station
    gave_up: np.ndarray     # bool: its client stopped waiting (timed out, or its outcome counted)
    gen: np.ndarray         # int: generation of the slot
    link: np.ndarray        # int (n, 2): next and previous in its station's queue
    origin: np.ndarray      # when the original request arrived
    attempt: np.ndarray     # int: 1 for the first try
    backoff: np.ndarray     # the delay before this attempt (decorrelated backoff grows from it)
    on_caller: np.ndarray   # bool: it runs on its caller's thread (an executor's caller_runs)
    free: np.ndarray        # int: the free slots, a stack; free_n[0] of them
    free_n: np.ndarray      # int (1,)


class Heap(NamedTuple):
    """The event list: a binary heap over five parallel arrays; size = [entries, next sequence]."""
    t: np.ndarray
    kind: np.ndarray
    ident: np.ndarray
    gen: np.ndarray
    seq: np.ndarray
    size: np.ndarray


@jit(inline=True)
def new_txns(cap):
    free = np.empty(cap, np.int64)
    for i in range(cap):
        free[i] = cap - 1 - i
    return Txns(np.empty(cap, np.int64), np.empty(cap), np.empty(cap), np.empty(cap), np.empty(cap),
                np.empty(cap), np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap, np.bool_),
                np.zeros(cap, np.int64), np.empty((cap, 2), np.int64), np.empty(cap), np.empty(cap, np.int64),
                np.empty(cap), np.zeros(cap, np.bool_), free, np.full(1, cap, np.int64))


@jit(inline=True)
def grown_txns(tx):
    """Twice the slots; the new ones free."""
    old = tx.stream.shape[0]
    n_free = tx.free_n[0]
    free = np.empty(2 * old, np.int64)
    free[:n_free] = tx.free[:n_free]
    for i in range(old):
        free[n_free + i] = 2 * old - 1 - i
    return Txns(doubled(tx.stream), doubled(tx.entered), doubled(tx.arrived), doubled(tx.started),
                doubled(tx.wait), doubled(tx.service), doubled(tx.state), doubled(tx.station),
                doubled(tx.gave_up), doubled(tx.gen), doubled(tx.link), doubled(tx.origin), doubled(tx.attempt),
                doubled(tx.backoff), doubled(tx.on_caller), free, np.full(1, n_free + old, np.int64))


@jit(inline=True)
def take_slot(tx):
    tx.free_n[0] -= 1
    return tx.free[tx.free_n[0]]


@jit(inline=True)
def release_slot(tx, x):
    """Free slot ``x``: its generation moves on, so events still scheduled for it are stale."""
    tx.gen[x] += 1
    tx.free[tx.free_n[0]] = x
    tx.free_n[0] += 1


@jit(inline=True)
def new_heap(cap):
    return Heap(np.empty(cap), np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap, np.int64),
                np.empty(cap, np.int64), np.zeros(2, np.int64))


@jit(inline=True)
def grown_heap(h):
    n = h.size[0]
    grow = 2 * h.t.shape[0]
    return Heap(np.concatenate((h.t[:n], np.empty(grow - n))),
                np.concatenate((h.kind[:n], np.empty(grow - n, np.int64))),
                np.concatenate((h.ident[:n], np.empty(grow - n, np.int64))),
                np.concatenate((h.gen[:n], np.empty(grow - n, np.int64))),
                np.concatenate((h.seq[:n], np.empty(grow - n, np.int64))), h.size)


@jit(inline=True)
def _before(h, i, t, seq):
    """Entry i comes before (t, seq): earlier, or as early and scheduled first (as in SimPy)."""
    return h.t[i] < t or (h.t[i] == t and h.seq[i] < seq)


@jit(inline=True)
def push(h, t, kind, ident, gen):
    """Schedule event ``kind`` for ``ident`` (of slot generation ``gen``) at ``t``."""
    i = h.size[0]
    seq = h.size[1]
    h.size[0] += 1
    h.size[1] += 1
    while i > 0:
        parent = (i - 1) >> 1
        if _before(h, parent, t, seq):
            break
        h.t[i], h.kind[i], h.ident[i], h.gen[i], h.seq[i] = (h.t[parent], h.kind[parent], h.ident[parent],
                                                             h.gen[parent], h.seq[parent])
        i = parent
    h.t[i], h.kind[i], h.ident[i], h.gen[i], h.seq[i] = t, kind, ident, gen, seq


@jit(inline=True)
def pop(h):
    """The earliest event: (time, kind, ident, generation)."""
    t, kind, ident, gen = h.t[0], h.kind[0], h.ident[0], h.gen[0]
    h.size[0] -= 1
    n = h.size[0]
    lt, lk, li, lg, ls = h.t[n], h.kind[n], h.ident[n], h.gen[n], h.seq[n]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and _before(h, child + 1, h.t[child], h.seq[child]):
            child += 1
        if not _before(h, child, lt, ls):
            break
        h.t[i], h.kind[i], h.ident[i], h.gen[i], h.seq[i] = (h.t[child], h.kind[child], h.ident[child],
                                                             h.gen[child], h.seq[child])
        i = child
    h.t[i], h.kind[i], h.ident[i], h.gen[i], h.seq[i] = lt, lk, li, lg, ls
    return t, kind, ident, gen
