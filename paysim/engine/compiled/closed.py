"""Closed populations on the compiled engine: ``clients`` that each think, send a request,
wait for its outcome and think again, as paysim.engine.simpy_engine._Stream runs them.

A client's request is an ARRIVAL event of its stream that schedules no next arrival; the
next one is scheduled when the request has its outcome (a success, or a failure that is
not retried), after a think time drawn from the stream's own "think" generator. At time
0 every client starts thinking, stream by stream, as the SimPy engine's ``begin`` does.
The kernel decides which streams are closed (``m.clients``) and hands these plain arrays.
"""

from __future__ import annotations

from paysim.engine.compiled.codes import ARRIVAL
from paysim.engine.compiled.primitives import draw, helper
from paysim.engine.compiled.state import push


@helper
def send_after_think(think, s, emp, rng, heap, size, now):
    """A client of stream ``s`` thinks (row ``s`` of the think table), then sends a request."""
    push(heap, size, now + draw(think, s, emp, rng), ARRIVAL, s, 0)


@helper
def start_clients(clients, think, s, emp, rng, heap, size):
    """Every client of stream ``s`` starts by thinking."""
    for _ in range(clients[s]):
        send_after_think(think, s, emp, rng, heap, size, 0.0)
