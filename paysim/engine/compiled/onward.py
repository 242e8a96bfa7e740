"""Where a transaction goes after a station's service (or after the join of its parallel
calls): its risk outcome's station, or a weighted draw among the station's routes, as
paysim.engine.station.Onward.route decides it."""

from __future__ import annotations

import numpy as np

from paysim.engine.compiled.classify import classified
from paysim.engine.compiled.primitives import jit


@jit(inline=True)
def drawn_route(route_cum, route_to, rng, st):
    """A weighted draw among station ``st``'s routes (no draw when it has one)."""
    routes = route_cum[st]
    u = rng.random() if routes.shape[0] > 1 and routes[0] < np.inf else 0.0
    j = 0
    while routes[j] <= u:
        j += 1
    return route_to[st, j]


@jit(inline=True)
def route(m, acc, st, rngs, feats, x):
    """The station ``x`` goes to after ``st`` (TO_DONE: it leaves, done)."""
    if m.cl_on[st]:
        return classified(m, acc, st, feats, x)
    return drawn_route(m.route_cum, m.route_to, rngs[m.rng_route[st]], st)
