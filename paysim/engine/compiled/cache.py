"""A station's cache in the compiled engine, as paysim.engine.cache: at each service start a
draw from the station's ``cache`` generator decides a hit, served in a time from its
``cache-service`` generator (the station's own service generator is not drawn); a hit skips
the station's parallel calls."""

from __future__ import annotations

import numpy as np

from paysim.engine.compiled.balance import units
from paysim.engine.compiled.codes import DET, DONE_SERVICE, ST_CACHE_HITS, TXI_CACHE_HIT, TXI_GEN
from paysim.engine.compiled.cores import serve
from paysim.engine.compiled.generators import generator_at
from paysim.engine.compiled.primitives import draw, helper, jit
from paysim.engine.compiled.state import push
from paysim.scenario import Scenario


def cache_tables(scenario: Scenario, index, row) -> dict[str, np.ndarray]:
    """The Model's cache fields per station row: the hit probability (-1: no cache), the
    cache's service row, and its two generators (shared by a station's instances)."""
    rows = [(spec.cache.hit, row(spec.cache.service), index("cache", name), index("cache-service", name))
            if spec.cache is not None else (-1.0, [DET, 0.0, 0.0, 0.0], 0, 0) for _, name, spec in units(scenario)]
    hit, service, rng_hit, rng_service = zip(*rows)
    return {"cache_hit": np.array(hit, float), "cache_service": np.array(service, float).reshape(len(rows), 4),
            "rng_cache": np.array(rng_hit, np.int64), "rng_cache_service": np.array(rng_service, np.int64)}


@helper
def cached_service(service, cache_hit, cache_service, emp, rng, hit_rng, cache_rng, st_i, txi, st, x):
    """The service time of ``x`` at cached station row ``st``, noting whether the cache answered."""
    hit = hit_rng.random() < cache_hit[st]
    txi[x, TXI_CACHE_HIT] = 1 if hit else 0
    if hit:
        st_i[st, ST_CACHE_HITS] += 1
        return draw(cache_service, st, emp, cache_rng)
    return draw(service, st, emp, rng)


@jit
def service_of(m, rngs, st_i, txi, st, x):
    """The service time of ``x`` starting at station row ``st``, through its cache if it has one
    (for the paths apart from the event loop: a join's or a held call's freed worker)."""
    if m.cache_hit[st] < 0:
        return draw(m.service, st, m.emp, generator_at(rngs, m.rng_service[st]))
    return cached_service(m.service, m.cache_hit, m.cache_service, m.emp, generator_at(rngs, m.rng_service[st]),
                          generator_at(rngs, m.rng_cache[st]), generator_at(rngs, m.rng_cache_service[st]), st_i, txi,
                          st, x)


@helper
def serve_cached(service, cache_hit, cache_service, emp, rng, hit_rng, cache_rng, slow, heap, size, st_i, txi, st, y,
                 now):
    """``y``'s service at cached station row ``st`` starts now (its cores are not shared:
    driver.unsupported), a DONE_SERVICE event when it is done."""
    work = cached_service(service, cache_hit, cache_service, emp, rng, hit_rng, cache_rng, st_i, txi, st, y)
    push(heap, size, now + work * slow[st], DONE_SERVICE, y, txi[y, TXI_GEN])


@helper(hot=True)
def start_work(service, emp, cache_hit, cache_service, rngs, rng_service, rng_cache, rng_cache_service, slow, cores,
               cpu_f, cpu_i, jobs, heap, size, st_i, txi, st, y, now):
    """``y``'s service at station row ``st`` starts now: through its cache if it has one, else
    drawn and done at full speed or on its shared cores (paysim.engine.compiled.cores.serve)."""
    rng = generator_at(rngs, rng_service[st])
    if cache_hit[st] < 0:
        serve(service, emp, rng, slow, cores, cpu_f, cpu_i, jobs, heap, size, txi, st, y, now)
    else:
        serve_cached(service, cache_hit, cache_service, emp, rng, generator_at(rngs, rng_cache[st]),
                     generator_at(rngs, rng_cache_service[st]), slow, heap, size, st_i, txi, st, y, now)
