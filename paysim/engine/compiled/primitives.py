"""The compiled engine's building blocks: the jit decorator, random draws and the
percentile sketch's bucket."""

from __future__ import annotations

import functools
import hashlib
import math
from pathlib import Path
from typing import Any

import numba
from numba.core import caching

from paysim.engine.compiled.codes import DET, EXP, GAMMA, HYPER, LOGN, UNIF

_PACKAGE = Path(__file__).resolve().parent


@functools.cache
def _package_stamp() -> bytes:
    """A digest of every source file of this package: a kernel's machine code depends on the
    helpers it calls from other files, which numba's own cache check (the kernel's file
    alone) would miss, running stale helpers after an edit or an upgrade."""
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.digest()


def _package_locators() -> list[Any]:
    """numba cache locators for this package's functions, stamped with the whole package."""

    def located_here(base: Any) -> Any:
        class Locator(base):
            def get_source_stamp(self):
                return _package_stamp()

            @classmethod
            def from_function(cls, py_func, py_file):
                if Path(py_file).resolve().parent != _PACKAGE:
                    return None
                return super().from_function(py_func, py_file)

        Locator.__name__ = Locator.__qualname__ = f"Package{base.__name__}"
        return Locator

    return [located_here(base) for base in (caching.UserProvidedCacheLocator, caching.InTreeCacheLocator,
                                            caching.UserWideCacheLocator)]


if not any(cls.__name__.startswith("Package") for cls in caching.CacheImpl._locator_classes):
    caching.CacheImpl._locator_classes[:0] = _package_locators()


def jit(function=None, *, inline: bool = False):
    """Compiled with numba, its machine code cached on disk.
    ``inline``: a small helper of a kernel that allocates arrays, compiled into its callers."""
    if function is None:
        return lambda f: jit(f, inline=inline)
    return numba.njit(cache=True, nogil=True, error_model="numpy", inline="always" if inline else "never")(function)


def helper(function=None, *, hot: bool = False):
    """A kernel's helper that allocates nothing, compiled without reference counting: numba
    counts a reference (atomically) for every array bound to an inlined helper's argument,
    which cost more than the helpers' work; a helper without counting borrows its caller's
    arrays instead.
    ``hot``: called for most events, so compiled into its callers by LLVM (numba's
    forceinline), which counts no references either: a call passes each array as its
    seven to eleven fields, and a call with a dozen arrays cost more than the helper's work."""
    if function is None:
        return lambda f: helper(f, hot=hot)
    # _nrt is numba's switch for reference counting, missing from its type stubs
    return numba.njit(cache=True, nogil=True, error_model="numpy", _nrt=False,  # type: ignore[call-overload]
                      forceinline=hot)(function)


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
