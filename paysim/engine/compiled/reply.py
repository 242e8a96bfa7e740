"""A request's answer in the compiled engine: at the end of its route, or earlier where it
leaves a ``reply: true`` station (the rest of its route then goes on in the background), as
paysim.engine.simpy_engine's ``_answer``."""

from __future__ import annotations

import numpy as np

from paysim.engine.compiled.balance import units
from paysim.engine.compiled.codes import (
    SR_BG_FAILED,
    SR_SUCCEEDED,
    SRF_LATENCY,
    SRF_SUCCESS_WAIT,
    ST_CACHE_HITS,
    ST_RATE_LIMITED,
    TXF_ORIGIN,
    TXF_WAIT,
)
from paysim.engine.compiled.primitives import bucket, helper
from paysim.engine.compiled.series import latency as latency_in_series
from paysim.scenario import Scenario


def reply_tables(scenario: Scenario) -> dict[str, np.ndarray]:
    """The Model's ``reply``: per station row, whether its client has the answer when a request leaves it."""
    return {"reply": np.array([spec.reply for _, _, spec in units(scenario)], np.bool_)}


@helper
def answer_client(sr_f, sr_i, sr_sketch, sr_zeros, series_lat, txf, x, s, now, log_gamma, offset, nbuckets, min_value):
    """The client of attempt ``x`` (stream ``s``) has its answer: a success, whose latency runs
    from the request's first attempt, backoffs included."""
    latency = now - txf[x, TXF_ORIGIN]
    sr_i[s, SR_SUCCEEDED] += 1
    sr_f[s, SRF_LATENCY] += latency
    sr_f[s, SRF_SUCCESS_WAIT] += txf[x, TXF_WAIT]
    tiny = latency < min_value
    b = 0 if tiny else bucket(latency, log_gamma, offset, nbuckets)
    if tiny:
        sr_zeros[s] += 1
    else:
        sr_sketch[s, b] += 1
    latency_in_series(series_lat, tiny, b)


@helper
def open_counts(st_i, sr_i):
    """The measurement window opens: zero the counts of rate limits, caches and background failures."""
    for st in range(st_i.shape[0]):
        st_i[st, ST_RATE_LIMITED] = 0
        st_i[st, ST_CACHE_HITS] = 0
    for s in range(sr_i.shape[0]):
        sr_i[s, SR_BG_FAILED] = 0


def report_counts(acc, observer) -> None:
    """Hand the rate-limit, cache and background-failure counts to the observer."""
    for i, station in enumerate(observer.stations.values()):
        station.rate_limited, station.cache_hits = int(acc.st_i[i, ST_RATE_LIMITED]), int(acc.st_i[i, ST_CACHE_HITS])
    for i, stream in enumerate(observer.streams.values()):
        stream.background_failed = int(acc.sr_i[i, SR_BG_FAILED])
