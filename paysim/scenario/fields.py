"""Field types of the scenario language: unit-bearing numbers, counts and distributions.

Each is an ``Annotated`` type whose validator turns what the user wrote into a float
(seconds, per second, fraction), an int or a :mod:`paysim.distributions` object, or
raises ``ValueError`` with what was expected and what was given.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import math
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationInfo

from paysim import distributions as d
from paysim.errors import KeyPathError
from paysim.units import SECONDS_PER, is_finite_number, parse_duration, parse_probability, parse_rate


def _positive(parse):
    def check(value: object) -> float:
        number = parse(value)
        if number <= 0:
            raise ValueError(f"expected a value greater than zero, got {_shown(value)}")
        return number
    return check


MAX_COUNT = 10_000_000  # beyond this a count is a typo, and would exhaust memory
MAX_CSV_BYTES = 200_000_000  # an empirical distribution's CSV file


def _shown(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _whole(minimum: int, maximum: int = MAX_COUNT):
    def check(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise ValueError(f"expected a whole number from {minimum} to {maximum:,}, got {_shown(value)}")
        return value
    return check


def _number(value: object) -> float:
    if not isinstance(value, bool) and isinstance(value, (int, float)) and 0 <= value < 1e300:
        return float(value)
    raise ValueError(f"expected a finite non-negative number, got {_shown(value)}")


Duration = Annotated[float, BeforeValidator(parse_duration)]
PositiveDuration = Annotated[float, BeforeValidator(_positive(parse_duration))]
Rate = Annotated[float, BeforeValidator(parse_rate)]
PositiveRate = Annotated[float, BeforeValidator(_positive(parse_rate))]
Probability = Annotated[float, BeforeValidator(parse_probability)]
Multiplier = Annotated[float, BeforeValidator(_number)]
PositiveInt = Annotated[int, BeforeValidator(_whole(1))]
NonNegativeInt = Annotated[int, BeforeValidator(_whole(0))]
UNLIMITED_WORKERS = 2**40   # ``workers: unlimited``: above any count, exact as a float, an int64 in the engines


def _workers(value: object) -> int:
    """A whole number of workers, or ``unlimited`` (a pure delay: a worker for every arrival)."""
    if value == "unlimited":
        return UNLIMITED_WORKERS
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
        raise ValueError(f"expected a whole number from 1 to {MAX_COUNT:,} or unlimited, got {_shown(value)}")
    return value


Workers = Annotated[int, BeforeValidator(_workers)]
Seed = Annotated[int, BeforeValidator(_whole(0, 2**128 - 1))]


def time_unit(value: object) -> float:
    """Seconds per unit of a time unit's name (``ms``, ``s`` ...)."""
    if not isinstance(value, str) or value not in SECONDS_PER:
        raise ValueError(f"expected a time unit ({', '.join(SECONDS_PER)}), got {_shown(value)}")
    return SECONDS_PER[value]


def did_you_mean(word: object, choices: Any) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# family -> the parameter sets it accepts, in the order they are tried
FAMILIES: dict[str, list[tuple[str, ...]]] = {
    "deterministic": [("value",)],
    "exponential": [("mean",), ("rate",)],
    "lognormal": [("median", "p99"), ("mean", "p99"), ("mean", "cv")],
    "gamma": [("mean", "cv")],
    "erlang": [("mean", "k")],
    "hyperexponential": [("mean", "cv")],
    "uniform": [("low", "high")],
    "empirical": [("file", "column", "unit"), ("file", "column"), ("file", "unit"), ("file",)],
}


def _param(key: str, value: object) -> Any:
    try:
        if key == "cv":
            number = _number(value)
            if number <= 0:
                raise ValueError(f"expected a coefficient of variation greater than zero, got {_shown(value)}")
            return number
        if key == "k":
            return _whole(1)(value)
        if key == "rate":
            return _positive(parse_rate)(value)
        if key == "file":
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"expected a file name, got {_shown(value)}")
            return value
        if key == "column":
            if not isinstance(value, (str, int)) or isinstance(value, bool):
                raise ValueError(f"expected a column name or number, got {_shown(value)}")
            return value
        if key == "unit":
            return time_unit(value)
        if key in ("value", "low"):
            return parse_duration(value)
        return _positive(parse_duration)(value)
    except ValueError as error:
        raise KeyPathError((key,), str(error)) from None


def read_csv_cells(file: str, column: str | int | None, base_dir: Path) -> tuple[str, list[tuple[int, str]], str]:
    """The cells of one column of a CSV file (path relative to ``base_dir``) as (line, text), the
    column's name for messages and the sha256 of the file's bytes (so a resumed sweep can tell
    it changed); a column chosen by position may have no header row."""
    path = (base_dir / file) if not Path(file).is_absolute() else Path(file)
    try:
        if path.is_dir():
            raise KeyPathError(("file",), f"{str(path)!r} is a directory, not a CSV file")
        if path.exists() and not path.is_file():  # a device or a pipe could block or never end
            raise KeyPathError(("file",), f"{str(path)!r} is not a regular file")
        with path.open("rb") as handle:  # bounded, so /dev/zero or a pipe cannot fill memory
            raw = handle.read(MAX_CSV_BYTES + 1)
        if len(raw) > MAX_CSV_BYTES:
            raise KeyPathError(("file",), f"{str(path)!r} is larger than {MAX_CSV_BYTES // 1_000_000} MB")
        reader = csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline=""))
        rows = [(reader.line_num, row) for row in reader if "".join(row).strip()]  # blank lines skipped
    except (OSError, ValueError) as error:  # ValueError: a NUL in the name, not UTF-8
        if isinstance(error, KeyPathError):
            raise
        raise KeyPathError(("file",), f"cannot read {str(path)!r}: {getattr(error, 'strerror', None) or error}") from None
    except csv.Error as error:
        raise KeyPathError(("file",), f"{file!r} is not a CSV file of numbers: {error}") from None
    if not rows:
        raise KeyPathError(("file",), f"{str(path)!r} is empty")
    header = rows[0][1]
    if column is None:
        index = 0
    elif isinstance(column, int) and 0 <= column < len(header):
        index = column
    elif column in header:
        index = header.index(column)
    else:
        raise KeyPathError(("column",), f"no column {column!r} in {file!r}; it has {header}{did_you_mean(column, header)}")
    # a file without a header row: a column chosen by position whose first cell is already a number
    body = rows if isinstance(column, (int, type(None))) and is_finite_number(header[index]) else rows[1:]
    name = f"column {index + 1}" if body is rows else f"column {header[index]!r}"
    cells = [(number, row[index].strip() if index < len(row) else "") for number, row in body]
    if not cells:
        raise KeyPathError(("file",), f"{file!r} has a header but no values")
    return name, cells, hashlib.sha256(raw).hexdigest()


def _read_column(file: str, column: str | int | None, unit_s: float, base_dir: Path) -> d.Empirical:
    name, cells, sha256 = read_csv_cells(file, column, base_dir)
    values = []
    for number, cell in cells:
        try:
            value = float(cell) * unit_s
        except ValueError:
            raise KeyPathError(("file",), f"{file!r} line {number}: expected a number in {name}, got {_shown(cell)}") from None
        if not (math.isfinite(value) and value >= 0):
            raise KeyPathError(("file",), f"{file!r} line {number}: expected a finite non-negative duration, got {_shown(cell)}")
        values.append(value)
    return d.Empirical(tuple(values), source=file, sha256=sha256)


def _build(family: str, p: dict[str, Any], base_dir: Path) -> d.Distribution:
    try:
        if family == "deterministic":
            return d.Deterministic(p["value"])
        if family == "exponential":
            return d.Exponential(p["mean"] if "mean" in p else 1 / p["rate"])
        if family == "lognormal":
            if "median" in p:
                return d.Lognormal.from_median_p99(p["median"], p["p99"])
            if "p99" in p:
                return d.Lognormal.from_mean_p99(p["mean"], p["p99"])
            return d.Lognormal.from_mean_cv(p["mean"], p["cv"])
        if family == "gamma":
            return d.Gamma.from_mean_cv(p["mean"], p["cv"])
        if family == "erlang":
            return d.Gamma(float(p["k"]), p["mean"] / p["k"])
        if family == "hyperexponential":
            return d.Hyperexponential.from_mean_cv(p["mean"], p["cv"])
        if family == "uniform":
            if p["low"] > p["high"]:
                raise ValueError(f"needs low <= high, got low={p['low']:g}s, high={p['high']:g}s")
            return d.Uniform(p["low"], p["high"])
    except ValueError as error:
        raise ValueError(f"{family}: {error}") from None
    return _read_column(p["file"], p.get("column"), p.get("unit", 1.0), base_dir)


def parse_distribution(value: object, base_dir: Path = Path(".")) -> d.Distribution:
    """A distribution from a duration (deterministic) or a mapping with ``dist``; an
    empirical ``file`` is resolved against ``base_dir`` (the scenario's directory)."""
    if isinstance(value, d.Distribution):
        return value
    if not isinstance(value, dict):
        try:
            return d.Deterministic(parse_duration(value))
        except ValueError:
            raise ValueError(f"expected a duration (such as 20ms) or a mapping with 'dist', got {_shown(value)}") from None
    family = value.get("dist")
    if not isinstance(family, str) or family not in FAMILIES:
        hint = did_you_mean(family, FAMILIES) if isinstance(family, str) else ""
        raise KeyPathError(("dist",), f"expected one of {', '.join(FAMILIES)}, got {_shown(family)}{hint}")
    keys = set(value) - {"dist"}
    shapes = FAMILIES[family]
    if set(keys) not in [set(shape) for shape in shapes]:
        wanted = " or ".join("(" + ", ".join(shape) + ")" for shape in shapes)
        raise ValueError(f"{family} takes {wanted}; got ({', '.join(sorted(map(str, keys)))})")
    params = {key: _param(key, value[key]) for key in keys}
    return _computable(family, _build(family, params, base_dir))


def _computable(family: str, dist: d.Distribution) -> d.Distribution:
    """Refuse parameters (each valid alone) whose mean or variance overflows, e.g. a lognormal
    with a median of 1e-300 s and a p99 of 1 s: the simulator and every check divide by them."""
    try:
        moments = (dist.mean, dist.scv)
    except ArithmeticError:
        moments = (math.inf, math.inf)
    if not all(math.isfinite(moment) for moment in moments):
        raise ValueError(f"{family}: these parameters give a mean or variance too large or too small to compute with")
    return dist


def _validate_distribution(value: object, info: ValidationInfo) -> d.Distribution:
    # pydantic passes ``info`` only to validators whose second parameter has no default
    return parse_distribution(value, Path((info.context or {}).get("base_dir", ".")))


DistributionSpec = Annotated[d.Distribution, BeforeValidator(_validate_distribution)]
