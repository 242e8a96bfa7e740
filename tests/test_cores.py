"""Shared cores (``cores: N``, processor sharing) and unlimited workers (a pure delay), on both engines.

Same-path checks: both engines run the processor-sharing bookkeeping (a virtual clock,
one completion event per station rescheduled when the number computing changes) with the
same arithmetic in the same order, so one replication must give the same numbers to
rounding, including withdrawn work (on_timeout: cancel), slowdowns, outages and errors.
Theory checks: a station whose workers never bind and whose service work shares N cores is
the M/G/N processor-sharing queue, insensitive to the service distribution: its number in
system, hence its mean sojourn, is M/M/N's (Erlang C) for any service distribution with the
same mean; unlimited workers are M/G/∞ (W = E[S], L = λE[S]).
"""

from __future__ import annotations

import math

import pytest
from conftest import SEED, assert_theory, scenario
from test_engines_identical import _assert_same_path

from paysim import analytic
from paysim.runner import simulate

LOGNORMAL = {"dist": "lognormal", "mean": 0.05, "cv": 1.5}

SAME_PATH = {   # station s (and t behind it), stream a
    "cores-bind-threads": ({"s": {"workers": 6, "cores": 2, "service": LOGNORMAL, "errors": 0.05,
                                  "next": {"t": 0.5, "done": 0.5}},
                            "t": {"workers": "unlimited", "cores": 3, "service": {"dist": "gamma", "mean": 0.04,
                                                                                  "cv": 0.5}}},
                           {"rate": 30}),
    "cores-cancel-slowdown-outage": ({"s": {"workers": 8, "cores": 3, "service": LOGNORMAL, "on_timeout": "cancel",
                                            "slowdowns": [{"at": 30, "for": 20, "factor": 2}],
                                            "outages": [{"at": 70, "for": 3, "mode": "hang"}]}},
                                     {"rate": 40, "timeout": 0.3,
                                      "retry": {"attempts": 2, "base": 0.05, "on": "timeout"}}),
    "unlimited-delay": ({"s": {"workers": 2, "service": {"dist": "exponential", "mean": 0.04}, "next": "t"},
                         "t": {"workers": "unlimited", "service": {"dist": "uniform", "low": 0.01, "high": 0.2},
                               "on_timeout": "cancel", "errors": 0.1}},
                        {"rate": 30, "timeout": 0.2}),
    "deterministic-ties": ({"s": {"workers": "unlimited", "cores": 2, "service": 0.03}},
                           {"rate": 80, "process": "deterministic"}),
}


@pytest.mark.parametrize("name", sorted(SAME_PATH))
def test_cores_and_unlimited_follow_the_same_path(name):
    stations, stream = SAME_PATH[name]
    _assert_same_path(scenario(stations, {"a": stream}, horizon=120.0, warmup=10.0, replications=1))
