"""Closed populations on the compiled engine: ``clients`` that each think, send a request,
wait for its outcome and think again, as paysim.engine.simpy_engine._Stream runs them.

A client's request is an ARRIVAL event of its stream that schedules no next arrival; the
next one is scheduled when the request has its outcome (a success, or a failure that is
not retried), after a think time drawn from the stream's own "think" generator. At time
0 every client starts thinking, stream by stream, as the SimPy engine's ``begin`` does.
"""

from __future__ import annotations

from paysim.engine.compiled.codes import ARRIVAL
from paysim.engine.compiled.primitives import draw, jit
from paysim.engine.compiled.state import push


@jit(inline=True)
def closed(m, s):
    """Whether stream ``s`` is a closed population."""
    return m.clients[s] > 0


@jit(inline=True)
def _think_then_send(m, heap, rngs, s, now):
    push(heap, now + draw(m.think[s], m.emp, rngs[m.rng_think[s]]), ARRIVAL, s, 0)


@jit(inline=True)
def start_clients(m, heap, rngs, s):
    """Every client of stream ``s`` starts by thinking."""
    for _ in range(m.clients[s]):
        _think_then_send(m, heap, rngs, s, 0.0)


@jit(inline=True)
def request_done(m, heap, rngs, s, now):
    """A request of stream ``s`` has its outcome: a closed population's client thinks, then sends the next."""
    if closed(m, s):
        _think_then_send(m, heap, rngs, s, now)
