"""The compiled engine's mutable state: transaction slots and the event heap, as tables
with named columns that grow by doubling.

Kernel helpers take these arrays, never the named tuples (Model, Accumulators): numba
counts a reference to every array of a tuple bound to a helper's argument, and those
atomic counts cost more than the event itself.
"""

from __future__ import annotations

import numpy as np

from paysim.engine.compiled.codes import H_GEN, H_IDENT, H_KIND, H_SEQ, H_T, H_WIDTH, TXF_WIDTH, TXI_GEN, TXI_WIDTH
from paysim.engine.compiled.primitives import helper, jit


@jit(inline=True)
def grown_slots(txf, txi, free, free_n):
    """Twice the slots; the new ones free."""
    old = txf.shape[0]
    n_free = free_n[0]
    more = np.empty(2 * old, np.int64)
    more[:n_free] = free[:n_free]
    for i in range(old):
        more[n_free + i] = 2 * old - 1 - i
    free_n[0] = n_free + old
    return (np.concatenate((txf, np.empty((old, TXF_WIDTH)))),
            np.concatenate((txi, np.zeros((old, TXI_WIDTH), np.int64))), more)


@helper
def take_slot(free, free_n):
    """A free slot (``free_n``: [free slots, 1 + the highest slot ever taken]). Slots never
    taken are handed out lowest first, so the ones ever used are 0 up to that mark."""
    free_n[0] -= 1
    x = free[free_n[0]]
    free_n[1] = max(free_n[1], x + 1)
    return x


@helper
def release_slot(txi, free, free_n, x):
    """Free slot ``x``: its generation moves on, so events still scheduled for it are stale."""
    txi[x, TXI_GEN] += 1
    free[free_n[0]] = x
    free_n[0] += 1


@jit(inline=True)
def new_heap(cap):
    """The event list (a binary heap of rows H_*) and its size: [entries, next sequence number]."""
    return np.empty((cap, H_WIDTH)), np.zeros(2, np.int64)


@jit(inline=True)
def grown_heap(heap, size):
    return np.concatenate((heap[:size[0]], np.empty((2 * heap.shape[0] - size[0], H_WIDTH))))


@helper
def _copy_row(heap, source, target):
    for c in range(H_WIDTH):
        heap[target, c] = heap[source, c]


@helper
def _before(heap, i, t, seq):
    """Entry i comes before (t, seq): earlier, or as early and scheduled first (as in SimPy)."""
    return heap[i, H_T] < t or (heap[i, H_T] == t and heap[i, H_SEQ] < seq)


@helper
def push(heap, size, t, kind, ident, gen):
    """Schedule event ``kind`` for ``ident`` (of slot generation ``gen``) at ``t``."""
    i = size[0]
    seq = size[1]
    size[0] += 1
    size[1] += 1
    while i > 0:
        parent = (i - 1) >> 1
        if _before(heap, parent, t, seq):
            break
        _copy_row(heap, parent, i)
        i = parent
    heap[i, H_T], heap[i, H_KIND], heap[i, H_IDENT], heap[i, H_GEN], heap[i, H_SEQ] = t, kind, ident, gen, seq


@helper
def pop(heap, size):
    """The earliest event: (time, kind, ident, generation)."""
    t, kind, ident, gen = heap[0, H_T], int(heap[0, H_KIND]), int(heap[0, H_IDENT]), int(heap[0, H_GEN])
    size[0] -= 1
    n = size[0]
    lt, ls = heap[n, H_T], heap[n, H_SEQ]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and _before(heap, child + 1, heap[child, H_T], heap[child, H_SEQ]):
            child += 1
        if not _before(heap, child, lt, ls):
            break
        _copy_row(heap, child, i)
        i = child
    _copy_row(heap, n, i)
    return t, kind, ident, gen
