"""The compiled engine's building blocks: the jit decorator, random draws and the
percentile sketch's bucket."""

from __future__ import annotations

import math

from paysim.engine.compiled.codes import DET, EXP, GAMMA, HYPER, LOGN, UNIF

try:
    import numba
except ImportError:  # pragma: no cover - numba is a dependency; this keeps paysim usable without it
    numba = None


def jit(function=None, *, inline: bool = False):
    """Compiled with numba, its machine code cached on disk; plain Python without numba.
    ``inline``: a small helper of a kernel that allocates arrays, compiled into its callers."""
    if function is None:
        return lambda f: jit(f, inline=inline)
    if numba is None:
        return function
    return numba.njit(cache=True, nogil=True, error_model="numpy", inline="always" if inline else "never")(function)


def helper(function):
    """A kernel's helper that allocates nothing, compiled without reference counting: numba
    counts a reference (atomically) for every array bound to an inlined helper's argument,
    which cost more than the helpers' work; a helper without counting borrows its caller's
    arrays instead."""
    if numba is None:
        return function
    return numba.njit(cache=True, nogil=True, error_model="numpy", _nrt=False)(function)


@helper
def draw(table, i, emp, rng):
    """One value of the distribution in row ``i`` of a parameter table (code, p1, p2, p3),
    from generator ``rng`` (an empirical distribution's values are ``emp[p1:p2]``)."""
    code = int(table[i, 0])
    if code == DET:
        return table[i, 1]
    if code == EXP:
        return rng.exponential(table[i, 1])
    if code == LOGN:
        return rng.lognormal(table[i, 1], table[i, 2])
    if code == GAMMA:
        return rng.gamma(table[i, 1], table[i, 2])
    if code == UNIF:
        return rng.uniform(table[i, 1], table[i, 2])
    if code == HYPER:
        return rng.exponential(table[i, 2] if rng.random() < table[i, 1] else table[i, 3])
    start, end = int(table[i, 1]), int(table[i, 2])
    return emp[start + int(rng.random() * (end - start))]


@helper
def bucket(value, log_gamma, offset, size):
    """The percentile sketch's bucket of ``value`` (as paysim.sketch.QuantileSketch bins it)."""
    b = math.ceil(math.log(value) / log_gamma) - offset
    return min(max(b, 0), size - 1)
