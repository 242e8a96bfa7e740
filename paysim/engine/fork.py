"""Parallel calls on the SimPy engine: a transaction forks after a station's service into
one call per branch and joins the answers (``join: all`` waits for every call, ``any`` for
the first); a decided join takes back the calls still out."""

from __future__ import annotations

import simpy

from paysim.engine.station import FORKED, HELD, LEFT, SERVING, TRAVELLING, WAITING, Onward, Txn


class ForkJoin:
    """Fork and join for an engine that has a clock and loses transactions."""

    env: simpy.Environment

    def lose(self, txn: Txn, now: float, reason: str, silent: bool = False) -> None:
        raise NotImplementedError

    def fork(self, txn: Txn, onward: Onward) -> None:
        """After its service at ``onward``'s station, ``txn`` calls each branch, one at a time."""
        now = self.env.now
        txn.state = FORKED
        txn.station = onward
        self.new_calls(txn, len(onward.branches), now)
        for branch, child in zip(onward.branches, list(txn.children)):
            if txn.state != FORKED:   # an earlier call already decided the join
                break
            branch.arrive(child)

    @staticmethod
    def new_calls(txn: Txn, count: int, now: float) -> None:
        """``count`` calls of ``txn``, not yet sent, and as many answers pending."""
        txn.children = []
        txn.pending = count
        for _ in range(count):
            child = Txn(txn.stream, txn.origin, txn.attempt, 0.0, now, txn.features)
            child.parent = txn
            txn.children.append(child)

    def withdraw_calls(self, txn: Txn, now: float) -> None:
        """The join is decided (or its attempt given up): take back the calls still out."""
        for child in txn.children:
            if child.state in (WAITING, SERVING, HELD):
                child.station.withdraw(child, now)
            self._absorb(txn, child)

    @staticmethod
    def _absorb(parent: Txn, child: Txn) -> None:
        """A call's queueing and service time count towards its transaction's, once."""
        if child.parent is parent:
            parent.wait += child.wait
            parent.service += child.service
        child.state = LEFT
        child.parent = None

    def branch_returned(self, child: Txn, now: float, reason: str | None) -> None:
        """A call came back, answered (``reason`` None) or failed: decide the join if it can be."""
        parent = child.parent
        assert parent is not None   # only parallel calls return
        self._absorb(parent, child)
        if parent.state != FORKED:
            return
        onward: Onward = parent.station
        if self.joined(parent, reason, onward.join_any):
            self.withdraw_calls(parent, now)
            parent.state = TRAVELLING
            if reason is None:
                onward.route(parent)
            else:
                self.lose(parent, now, reason)

    @staticmethod
    def joined(parent: Txn, reason: str | None, join_any: bool) -> bool:
        """One of ``parent``'s calls came back: whether that decides the join (which then goes
        ``reason``'s way: answered when None). ``all`` needs every answer and fails at the first
        failure; ``any`` needs one answer and fails when every call failed."""
        parent.pending -= 1
        if reason is None:
            return join_any or parent.pending == 0
        return not join_any or parent.pending == 0
