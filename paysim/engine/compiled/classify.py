"""Risk classification in the compiled engine: the features a request carries (its amount),
and the logistic score that sends it to its approve, review or decline station, as
paysim.engine.station.Onward.score does.

Each stream draws a feature from its own generator (the SimPy engine's kind is the
feature's name: "amount"), once per original request; retries keep the request's
features. The score's terms are summed in the order the scenario lists them, so both
engines compute the same float.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from paysim.engine.compiled.codes import APPROVE, DECLINE, N_FEATURES, REVIEW, ST_OUTCOMES, TO_DONE, TXF_FEATURES
from paysim.engine.compiled.primitives import helper
from paysim.scenario import Scenario
from paysim.scenario.features import FEATURES
from paysim.scenario.models import OUTCOMES

INTERCEPT = -1       # a score term that is the intercept (else the term's feature column)
assert N_FEATURES == len(FEATURES), "codes.N_FEATURES counts paysim.scenario.features.FEATURES"


def feature_distributions(scenario: Scenario) -> list:
    """Every feature distribution of every stream (their values may need the side table)."""
    return [getattr(a, name) for a in scenario.arrivals.values() for name in FEATURES if getattr(a, name) is not None]


def classify_tables(scenario: Scenario, index: dict[str, int], rng_index: Callable[[str, str], int],
                    row: Callable[[Any], list[float]]) -> dict[str, np.ndarray]:
    """The Model's classification fields: per stream and feature its distribution row and
    generator (-1: the stream lacks it, and scores it as 0); per station its score terms in
    order (feature column or INTERCEPT, coefficient; padded with zero coefficients), its
    thresholds and the station of each outcome (TO_DONE: the outcome leaves)."""
    streams, stations = scenario.arrivals, scenario.stations
    n_sr, n_ft = len(streams), len(FEATURES)
    ft_dist = np.zeros((n_sr, n_ft, 4))
    rng_features = np.full((n_sr, n_ft), -1, np.int64)
    for s, (name, arrival) in enumerate(streams.items()):
        for k, feature in enumerate(FEATURES):
            dist = getattr(arrival, feature)
            if dist is not None:
                ft_dist[s, k] = row(dist)
                rng_features[s, k] = rng_index(feature, name)
    width = max([len(s.classify.logistic) for s in stations.values() if s.classify is not None] + [1])
    cl_term = np.full((len(stations), width), INTERCEPT, np.int64)
    cl_coef = np.zeros((len(stations), width))     # a padded term adds 0.0: the sum is unchanged
    cl_on = np.zeros(len(stations), np.bool_)
    cl_review = np.ones(len(stations))
    cl_decline = np.ones(len(stations))
    cl_to = np.full((len(stations), len(OUTCOMES)), TO_DONE, np.int64)   # an outcome without a route leaves
    for i, station in enumerate(stations.values()):
        classify = station.classify
        if classify is None:
            continue
        cl_on[i] = True
        cl_review[i], cl_decline[i] = classify.review_above, classify.decline_above
        for j, (name, coef) in enumerate(classify.logistic.items()):
            cl_term[i, j] = INTERCEPT if name == "intercept" else FEATURES.index(name)
            cl_coef[i, j] = coef
        for outcome, target in station.next.items():
            cl_to[i, OUTCOMES.index(outcome)] = index.get(str(target), TO_DONE)
    return {"ft_dist": ft_dist, "rng_features": rng_features, "ft_on": np.asarray((rng_features >= 0).any(axis=1)),
            "cl_on": cl_on, "cl_term": cl_term,
            "cl_coef": cl_coef, "cl_review": cl_review, "cl_decline": cl_decline, "cl_to": cl_to}


@helper
def score(cl_term, cl_coef, txf, st, x):
    """The logistic risk score of the request in slot ``x`` at station ``st``."""
    z = 0.0
    for j in range(cl_term.shape[1]):
        k = cl_term[st, j]
        z += cl_coef[st, j] * (1.0 if k == INTERCEPT else txf[x, TXF_FEATURES + k])
    return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0


@helper
def classified(cl_term, cl_coef, cl_review, cl_decline, cl_to, st_i, txf, st, x):
    """The outcome of scoring ``x`` at ``st``, counted; the station it goes to (TO_DONE: it leaves)."""
    p = score(cl_term, cl_coef, txf, st, x)
    outcome = DECLINE if p > cl_decline[st] else REVIEW if p > cl_review[st] else APPROVE
    st_i[st, ST_OUTCOMES + outcome] += 1
    return cl_to[st, outcome]
