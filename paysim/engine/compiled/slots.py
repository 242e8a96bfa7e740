"""The transaction slot tables a replication starts from, kept per thread and reused by the
next replication rather than allocated again.

Why: a replication with many requests in flight (a retry storm holds over a hundred thousand)
grew its tables by doubling from a thousand slots, and the copies and the fresh pages' faults
were a quarter of its time. The tables kept are the ones the last replication ended with, with
the room it needed and already paged in, so the next one needs no growing; the kernel resets
them (``reset``) before use.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np

from paysim.engine.compiled.codes import TXF_WIDTH, TXI_WIDTH
from paysim.engine.compiled.primitives import helper

START = 1024              # slots a first replication starts with (the kernel grows them)


class Slots(NamedTuple):
    """A replication's transaction slots (paysim.engine.compiled.state) and its attempts' calls."""
    txf: np.ndarray       # (slots, TXF_WIDTH)
    txi: np.ndarray       # int (slots, TXI_WIDTH)
    free: np.ndarray      # int (slots,): a stack of the free slots
    calls: np.ndarray     # int (slots, width): per slot, a forked or held attempt's calls
    used: int             # slots 0 to used - 1 may hold what a replication left (the rest are as new)


_kept = threading.local()   # threads run replications side by side: each keeps its own


def slots_for(width: int, least: int) -> Slots:
    """Slot tables for a replication whose attempts make up to ``width`` calls, with room for at
    least ``least`` slots: this thread's last ones when they fit, else new ones."""
    kept: Slots | None = getattr(_kept, "slots", None)
    if kept is None or kept.calls.shape[1] != width or kept.txf.shape[0] < least:
        cap = max(least, START)
        _kept.slots = kept = Slots(np.empty((cap, TXF_WIDTH)), np.empty((cap, TXI_WIDTH), np.int64),
                                   np.empty(cap, np.int64), np.empty((cap, width), np.int64), cap)
    return kept


def keep(slots: Slots | None) -> None:
    """The tables a replication ended with (the kernel's, grown if it needed more room) are the
    ones the next replication on this thread starts from; None after a runaway, whose tables
    are far larger than any replication that ends normally needs."""
    _kept.slots = slots


@helper
def reset(txi, free, calls, used):
    """Every slot free, as new: generation 0, no calls. Only the first ``used`` rows can hold
    what a replication left: resetting only those costs a small scenario nothing after a
    large one."""
    cap = txi.shape[0]
    txi[:used, :] = 0
    calls[:used, :] = -1
    for i in range(cap):
        free[i] = cap - 1 - i
