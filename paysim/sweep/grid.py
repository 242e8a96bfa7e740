"""A sweep file: a base scenario, the parameters to vary, and the grid of points they span.

Every point is the base scenario with its parameter values applied as dotted-key
overrides and validated again, so every point is itself a valid scenario; the whole
grid is checked before anything is simulated. A point's random seed is derived from
the sweep's seed and the point's canonical parameter values (not its position), so
its numbers do not depend on which executor, worker or order ran it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from paysim.errors import Problem, ScenarioError
from paysim.scenario import Scenario, scenario_from_data
from paysim.scenario.fields import did_you_mean
from paysim.scenario.inputs import files_read
from paysim.units import parse_duration, parse_probability, parse_rate
from paysim.yamlio import Lines, read_yaml

KEYS = ("scenario", "vary", "replications", "seed", "horizon", "warmup")
MAX_POINTS = 10_000       # validating a point takes about a millisecond; more is a typo
MAX_STEPS = 1_000
NOT_VARIED = {"seed": "set 'seed' in the sweep itself", "replications": "set 'replications' in the sweep itself",
              "name": "the name does not change the simulation", "description": "the description does not change the simulation"}
_NUMBER = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(.*?)\s*$")
# what a parameter's value measures, tried in this order (the formats do not overlap)
UNITS: list[tuple[str, Callable[[object], float]]] = [("/s", parse_rate), ("s", parse_duration), ("", parse_probability)]


@dataclass(frozen=True)
class Parameter:
    path: str                   # dotted key path into the scenario, e.g. arrivals.card.rate
    values: tuple[Any, ...]     # as written in the sweep file or generated ("100/s", 16)


@dataclass(frozen=True)
class Point:
    index: int                  # position in the grid (the first parameter varies slowest)
    params: dict[str, Any]      # parameter path -> value
    seed: int
    scenario: Scenario = field(repr=False)

    def label(self) -> str:
        return label(self.params)


@dataclass(frozen=True)
class Sweep:
    file: Path
    scenario_file: Path
    scenario_sha256: str
    parameters: tuple[Parameter, ...]
    replications: int
    seed: int
    overrides: dict[str, Any]   # horizon / warmup applied to every point
    points: tuple[Point, ...] = field(repr=False)

    def describe(self) -> dict[str, Any]:
        """What sweep.json records: enough to redraw the plots and to tell whether a resume is the same sweep."""
        first = self.points[0].scenario
        return {
            "format": 1, "file": str(self.file), "scenario": str(self.scenario_file),
            "scenario_name": first.name, "scenario_sha256": self.scenario_sha256,
            "seed": self.seed, "replications": self.replications, "overrides": self.overrides,
            "vary": {p.path: list(p.values) for p in self.parameters},
            "slo": first.slo.model_dump(exclude_none=True) if first.slo else {},
            "stations": list(first.stations), "streams": list(first.arrivals),
            "points": [{"point": p.index, "params": p.params, "seed": p.seed} for p in self.points],
            "inputs": files_read(*(p.scenario for p in self.points)),
        }


def cell_text(value: Any) -> str:
    """A parameter value as written into results.csv (text as is, anything else as JSON)."""
    return value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)


def numeric(value: Any) -> tuple[float, str] | None:
    """A parameter value as a number in canonical units, with the unit ("/s", "s" or ""), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value), ""
    if isinstance(value, str):
        for unit, parse in UNITS:
            try:
                return parse(value), unit
            except ValueError:
                continue
    return None


def point_seed(sweep_seed: int, params: Mapping[str, Any]) -> int:
    """A 64-bit seed from the sweep's seed and the point's canonical parameter values."""
    def canonical_value(value: Any) -> Any:   # 100/s, 6000/min and 100 are the same rate
        parsed = numeric(value)
        return parsed[0] if parsed else value

    canonical = json.dumps(sorted((path, canonical_value(v)) for path, v in params.items()), default=str,
                           ensure_ascii=False)
    words = np.frombuffer(hashlib.sha256(canonical.encode()).digest(), dtype=np.uint32)
    sequence = np.random.SeedSequence(entropy=sweep_seed, spawn_key=tuple(int(w) for w in words))
    return int(sequence.generate_state(1, np.uint64)[0])


def is_sweep_file(path: str | Path) -> bool:
    """Whether ``path`` holds a sweep (a top-level ``sweep:`` key); False for anything unreadable."""
    try:
        data, _ = read_yaml(Path(path))
    except ScenarioError:
        return False
    return isinstance(data, dict) and "sweep" in data


class _Problems:
    """Problems found in one sweep file, each with the line of its key path."""

    def __init__(self, file: Path, lines: Lines) -> None:
        self.file, self.lines = str(file), lines
        self.found: list[Problem] = []

    def add(self, path: tuple, message: str) -> None:
        line = next((self.lines[path[:end]] for end in range(len(path), 0, -1) if path[:end] in self.lines), None)
        self.found.append(Problem(self.file, path, message, line))

    def raise_if_any(self) -> None:
        if self.found:
            raise ScenarioError(self.found)


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _settings(data: Any, problems: _Problems) -> dict[str, Any]:
    """The ``sweep:`` mapping's own keys, checked."""
    if not isinstance(data, dict):
        problems.add((), "expected a mapping with the key 'sweep'")
        problems.raise_if_any()
    for key in data:
        if key != "sweep":
            problems.add((key,), f"unknown key {key!r}: a sweep file holds only 'sweep:' (the scenario is a separate file)")
    sweep = data.get("sweep")
    if not isinstance(sweep, dict):
        problems.add(("sweep",), f"expected a mapping with the keys {', '.join(KEYS)}, got {sweep!r}"[:200])
        problems.raise_if_any()
    for key in sweep:
        if key not in KEYS:
            problems.add(("sweep", key), f"unknown key {key!r}{did_you_mean(key, KEYS)}; expected one of {', '.join(KEYS)}")
    for key in ("scenario", "vary"):
        if key not in sweep:
            problems.add(("sweep", key), "this key is required")
    if "scenario" in sweep and not (isinstance(sweep["scenario"], str) and sweep["scenario"].strip()):
        problems.add(("sweep", "scenario"), f"expected the path of a scenario file, got {sweep['scenario']!r}")
    if "replications" in sweep and not _whole(sweep["replications"], 1, 100_000):
        problems.add(("sweep", "replications"), f"expected a whole number from 1 to 100,000, got {sweep['replications']!r}")
    if "seed" in sweep and not _whole(sweep["seed"], 0, 2**128 - 1):
        problems.add(("sweep", "seed"), f"expected a whole number from 0 to 2**128-1, got {sweep['seed']!r}")
    if "vary" in sweep and not (isinstance(sweep["vary"], dict) and sweep["vary"]):
        problems.add(("sweep", "vary"), "expected a mapping of dotted key paths (e.g. arrivals.card.rate) to a list "
                                        "of values or {from, to, steps}")
    return sweep


def _split(value: Any) -> tuple[float, str, Callable[[object], float] | None] | None:
    """(number, unit as written, parser of that kind of value) of ``from``; None if it is not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value), "", None
    match = _NUMBER.match(value) if isinstance(value, str) else None
    if not match:
        return None
    kind = numeric(value)
    if kind is None:
        return None
    parse = next(parse for unit, parse in UNITS if unit == kind[1])
    return float(match.group(1)), match.group(2), parse


def _end(to: Any, unit: str, parse: Callable[[object], float] | None) -> float | None:
    """``to`` in the unit of ``from``; None if it is not the same kind of value."""
    if parse is None:
        return float(to) if isinstance(to, (int, float)) and not isinstance(to, bool) else None
    try:
        return parse(to) / parse(f"1{unit}")
    except ValueError:
        return None


def _generated(spec: dict, where: tuple, problems: _Problems) -> tuple[Any, ...]:
    """The values of ``{from, to, steps}``, evenly spaced, in the unit of ``from``."""
    for key in spec:
        if key not in ("from", "to", "steps"):
            problems.add(where + (key,), f"unknown key {key!r}{did_you_mean(key, ('from', 'to', 'steps'))}; expected from, to, steps")
    missing = [key for key in ("from", "to", "steps") if key not in spec]
    for key in missing:
        problems.add(where + (key,), "this key is required")
    if missing:
        return ()
    steps, start, end = spec["steps"], _split(spec["from"]), None
    if not _whole(steps, 1, MAX_STEPS):
        problems.add(where + ("steps",), f"expected a whole number from 1 to {MAX_STEPS:,}, got {steps!r}")
    if start is None:
        problems.add(where + ("from",), f"expected a number, with a unit such as 100/s or 20ms, got {spec['from']!r}")
    else:
        number, unit, parse = start
        end = _end(spec["to"], unit, parse)
        if end is None or not math.isfinite(end):
            kind = "a plain number like 'from'" if parse is None else f"a value of the same kind as 'from' ({spec['from']!r})"
            problems.add(where + ("to",), f"expected {kind}, got {spec['to']!r}")
    if end is None or not _whole(steps, 1, MAX_STEPS):
        return ()
    values = np.linspace(number, end, steps) if steps > 1 else np.array([number])
    if parse is None and all(_whole(spec[key], -2**63, 2**63) for key in ("from", "to")):
        if any(abs(v - round(v)) > 1e-9 for v in values):
            problems.add(where + ("steps",), f"{steps} steps from {spec['from']} to {spec['to']} do not fall on whole "
                                             "numbers; choose steps so that they do, or list the values")
            return ()
        return tuple(round(float(v)) for v in values)   # a whole int, whatever numpy scalar round() gives
    if parse is None:
        return tuple(float(f"{v:.12g}") for v in values)
    return tuple(f"{v:.12g}{unit}" for v in values)


def _values(spec: Any, where: tuple, problems: _Problems) -> tuple[Any, ...]:
    if isinstance(spec, dict):
        values = _generated(spec, where, problems)
    elif isinstance(spec, list) and spec:
        values = tuple(spec)
    else:
        problems.add(where, f"expected a list of values or {{from, to, steps}}, got {spec!r}"[:200])
        return ()
    texts = [cell_text(v) for v in values]
    repeated = sorted({t for t in texts if texts.count(t) > 1})
    if repeated:
        problems.add(where, f"each value may appear once, but {', '.join(repeated)} repeats")
        return ()
    return values


def _model_kind(annotation: Any) -> Any:
    """What a field holds, as far as paths can follow it: a model, ("names", model), or None (a leaf)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        kinds = [_model_kind(arg) for arg in typing.get_args(annotation) if arg is not type(None)]
        return kinds[0] if len(kinds) == 1 else None
    if origin is dict:
        return ("names", _model_kind(typing.get_args(annotation)[1]))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


_NAMES = {"stations": "station", "arrivals": "arrival stream"}


def path_problem(data: Any, dotted: str) -> str | None:
    """Why ``dotted`` does not name a key of this scenario, or None if it does (unknown keys are never created)."""
    parts = dotted.split(".")
    if not all(parts):
        return "expected a dotted key path such as arrivals.card.rate"
    if parts[0] in NOT_VARIED and len(parts) == 1:
        return f"cannot vary {parts[0]!r}: {NOT_VARIED[parts[0]]}"
    node, kind = data, Scenario
    for depth, part in enumerate(parts):
        where = ".".join(parts[:depth])
        if isinstance(kind, tuple):  # a mapping of names the user chose
            names = list(node) if isinstance(node, dict) else []
            if part not in names:
                return f"the scenario has no {_NAMES.get(where, 'entry')} {part!r} under {where}{did_you_mean(part, names)}"
            node, kind = node[part], kind[1]
        elif kind is not None:
            if part not in kind.model_fields:
                place = f"under {where}" if where else "at the top of the scenario"
                return f"unknown key {part!r} {place}{did_you_mean(part, kind.model_fields)}"
            node = node.get(part) if isinstance(node, dict) else None
            kind = _model_kind(kind.model_fields[part].annotation)
        elif isinstance(node, dict):  # a distribution or routing mapping: only keys already written
            if part not in node:
                return f"{where} has no key {part!r}{did_you_mean(part, node)}; it has {', '.join(map(str, node))}"
            node = node[part]
        else:
            shown = "a list" if isinstance(node, list) else repr(node)[:60]
            return f"{where} is {shown}, not a mapping, so it has no key {part!r}; vary {where} as a whole"
    return None


def _read_scenario(file: Path, sweep: dict, problems: _Problems) -> tuple[Path, Any, Lines, str]:
    scenario_file = file.parent / sweep["scenario"]   # an absolute path stays as it is
    if not scenario_file.is_file():
        problems.add(("sweep", "scenario"), f"no scenario file {str(scenario_file)!r} (the path is relative to the sweep file)")
        problems.raise_if_any()
    data, lines = read_yaml(scenario_file)
    if isinstance(data, dict) and "sweep" in data:
        problems.add(("sweep", "scenario"), f"{sweep['scenario']!r} is itself a sweep file; name a scenario file")
        problems.raise_if_any()
    return scenario_file, data, lines, hashlib.sha256(scenario_file.read_bytes()).hexdigest()


def _parameters(sweep: dict, data: Any, problems: _Problems) -> tuple[Parameter, ...]:
    parameters = []
    for dotted, spec in sweep["vary"].items():
        where = ("sweep", "vary", dotted)
        if not isinstance(dotted, str):
            problems.add(where, f"expected a dotted key path such as arrivals.card.rate, got {dotted!r}")
            continue
        reason = path_problem(data, dotted)
        if reason:
            problems.add(where, reason)
        values = _values(spec, where, problems)
        if not reason and values:
            parameters.append(Parameter(dotted, values))
    for dotted in sweep["vary"]:
        if dotted in ("horizon", "warmup") and dotted in sweep:
            problems.add(("sweep", dotted), f"{dotted!r} is both set and varied; keep one")
    return tuple(parameters)


def label(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{path}={cell_text(value)}" for path, value in params.items())


def _blame(problem: Problem, params: Mapping[str, Any], sweep: dict, problems: _Problems) -> Problem | None:
    """The problem restated against the sweep key that set the offending value, or None if no sweep key did."""
    for dotted, value in params.items():
        parts, path = tuple(dotted.split(".")), tuple(problem.path)
        # the value itself is wrong, or it made the mapping that holds it wrong (routes no longer sum to 1)
        if path[:len(parts)] == parts or (len(path) >= 2 and parts[:len(path)] == path):
            spec = sweep["vary"][dotted]
            where = ("sweep", "vary", dotted) + ((spec.index(value),) if isinstance(spec, list) else ())
            return Problem(problems.file, where, f"value {cell_text(value)}: {problem.message}",
                           problems.lines.get(where) or problems.lines.get(where[:3]))
    if problem.path[:1] in (("horizon",), ("warmup",)) and problem.path[0] in sweep:
        where = ("sweep", problem.path[0])
        return Problem(problems.file, where, problem.message, problems.lines.get(where))
    return None


def _build_points(sweep: dict, scenario_file: Path, data: Any, lines: Lines, parameters: tuple[Parameter, ...],
                  problems: _Problems) -> tuple[Point, ...]:
    """Every point of the grid validated; problems gathered once each, with the first point that shows them."""
    overrides = {key: sweep[key] for key in ("horizon", "warmup") if key in sweep}
    grid = [dict(zip((p.path for p in parameters), values)) for values in itertools.product(*(p.values for p in parameters))]
    points: list[Point] = []
    seen: dict[str, tuple[Problem | None, Problem, list[int]]] = {}
    for index, params in enumerate(grid):
        try:
            scenario = scenario_from_data(data, str(scenario_file), lines, scenario_file.parent, {**overrides, **params})
        except ScenarioError as error:
            for problem in error.problems:
                blamed = _blame(problem, params, sweep, problems)
                seen.setdefault(str(blamed or problem), (blamed, problem, []))[2].append(index)
            continue
        seed = sweep.get("seed", scenario.seed)
        points.append(Point(index, params, point_seed(seed, params), scenario))
    for blamed, problem, at in seen.values():
        if blamed is None:
            others = f"; and {len(at) - 1} other points" if len(at) > 1 else ""
            blamed = Problem(problem.file, problem.path, f"{problem.message} (at sweep point {at[0]}: "
                                                         f"{label(grid[at[0]])}{others})", problem.line)
        problems.found.append(blamed)
    return tuple(points)


def load_sweep(path: str | Path) -> Sweep:
    """Read a sweep file, check it and every point of its grid; raises ScenarioError listing every problem."""
    file = Path(path)
    data, lines = read_yaml(file)
    problems = _Problems(file, lines)
    sweep = _settings(data, problems)
    if any(problem.path[:2] == ("sweep", "scenario") for problem in problems.found):
        problems.raise_if_any()
    scenario_file, scenario_data, scenario_lines, digest = _read_scenario(file, sweep, problems)
    parameters = _parameters(sweep, scenario_data, problems) if isinstance(sweep.get("vary"), dict) else ()
    problems.raise_if_any()
    count = math.prod(len(p.values) for p in parameters)
    if count > MAX_POINTS:
        problems.add(("sweep", "vary"), f"the grid has {count:,} points; at most {MAX_POINTS:,} are allowed in one sweep")
        problems.raise_if_any()
    points = _build_points(sweep, scenario_file, scenario_data, scenario_lines, parameters, problems)
    if any(point.scenario.warmup is None for point in points):
        problems.add(("sweep", "warmup"), "the scenario's 'warmup: auto' is not supported in a sweep yet (every point "
                                          "would need its own pilot runs); give the sweep a warmup such as 'warmup: 1m'")
    problems.raise_if_any()
    first = points[0].scenario
    seed = sweep.get("seed", first.seed)
    replications = sweep.get("replications", first.replications)
    return Sweep(file, scenario_file, digest, parameters, replications, seed,
                 {key: sweep[key] for key in ("horizon", "warmup") if key in sweep}, points)
