"""The transaction slot tables a replication starts from, kept per thread and reused by the
next replication rather than allocated again.

Why: a replication with many requests in flight (a retry storm holds over a hundred thousand)
grew its tables by doubling from a thousand slots, and the copies and the fresh pages' faults
were a quarter of its time. The tables kept have the room the last replication ended with,
so the next one needs no growing; the kernel resets them (``reset``) before use.
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
    needed: np.ndarray    # int (1,): the slots the replication ended with (the kernel's to set)


_kept = threading.local()   # threads run replications side by side: each keeps its own


def _new(cap: int, width: int) -> Slots:
    return Slots(np.empty((cap, TXF_WIDTH)), np.empty((cap, TXI_WIDTH), np.int64), np.empty(cap, np.int64),
                 np.empty((cap, width), np.int64), np.zeros(1, np.int64))


def slots_for(width: int, least: int) -> Slots:
    """Slot tables for a replication whose attempts make up to ``width`` calls, with room for at
    least ``least`` slots: this thread's last ones when they fit, else new ones."""
    kept: Slots | None = getattr(_kept, "slots", None)
    if kept is None or kept.calls.shape[1] != width or kept.txf.shape[0] < least:
        _kept.slots = kept = _new(max(least, START), width)
    return kept


def keep_needed(slots: Slots) -> None:
    """After a replication: tables with the room it ended with, for the next one on this thread."""
    if slots.needed[0] > slots.txf.shape[0]:
        _kept.slots = None       # (the old tables go before the new ones are made)
        _kept.slots = _new(int(slots.needed[0]), slots.calls.shape[1])


@helper
def reset(txi, free, calls):
    """Every slot free, as new: generation 0, no calls (the kernel's free count is then every slot)."""
    cap = txi.shape[0]
    txi[:, :] = 0
    calls[:, :] = -1
    for i in range(cap):
        free[i] = cap - 1 - i
