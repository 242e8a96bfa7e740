"""Reading a scenario file into a validated :class:`Scenario`, or a report of every problem.

Validation happens in two passes: pydantic checks each key's type and unit, then
:func:`check_references` checks what only the whole scenario can tell (routes to
unknown stations, probabilities that do not sum to one, transactions that can never
leave, a warm-up longer than the run).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from paysim.errors import KeyPathError, Problem, ScenarioError
from paysim.scenario.call_checks import call_problems
from paysim.scenario.features import feature_problems
from paysim.scenario.fields import did_you_mean
from paysim.scenario.models import DONE, Scenario
from paysim.units import sums_to_one
from paysim.yamlio import MAX_DEPTH, MAX_NODES, Lines, read_yaml

Path_ = tuple[str | int, ...]


def _line(lines: Lines, path: Path_) -> int | None:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def _step(current: Any, part: str | int) -> tuple[bool, Any, Any]:
    """Follow one part of an error location into the data: (found, key as the user wrote it, value)."""
    if isinstance(current, dict):
        if part in current:
            return True, part, current[part]
        # pydantic reports keys that are not text or whole numbers (None, 1.5, true) as their str()
        for key in current:
            if str(key) == str(part) and not isinstance(key, str):
                return True, key, current[key]
    elif isinstance(current, (list, tuple)) and isinstance(part, int) and 0 <= part < len(current):
        return True, part, current[part]
    return False, part, None


def _data_path(data: Any, loc: tuple, keep_last: bool) -> Path_:
    """The part of pydantic's error location that names keys the user wrote."""
    path: list[str | int] = []
    current = data
    for index, part in enumerate(loc):
        found, key, value = _step(current, part)
        if found:
            current = value
        elif keep_last and index == len(loc) - 1:
            pass
        else:
            continue  # a union tag or validator name, not a key
        path.append(key)
    return tuple(path)


_TYPE_MESSAGES = {
    "dict_type": "expected a mapping of keys to values",
    "string_type": "expected text",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
}


def _message(error: ErrorDetails) -> tuple[Path_, str]:
    kind, ctx, message = error["type"], error.get("ctx") or {}, error["msg"]
    extra: Path_ = ()
    cause = ctx.get("error")
    if isinstance(cause, KeyPathError):
        extra, message = cause.sub_path, str(cause)
    elif kind == "value_error":
        message = message.removeprefix("Value error, ")
    elif kind == "missing":
        message = "this key is required"
    elif kind in ("unknown_key", "planned_key"):
        extra = (ctx["key"],)
    elif error["loc"] and error["loc"][-1] == "[key]":
        message = f"a name must be text, got {error['input']!r} (put it in quotes)"
    elif kind in _TYPE_MESSAGES:
        message = f"{_TYPE_MESSAGES[kind]}, got {error['input']!r}"[:200]
    elif "input" in error and "got" not in message:
        message = f"{message[0].lower()}{message[1:]}, got {error['input']!r}"[:200]
    return extra, message


def check_references(scenario: Scenario) -> list[tuple[Path_, str]]:
    """Problems that only the whole scenario can show, as (key path, message)."""
    found: list[tuple[Path_, str]] = []
    stations = scenario.stations
    if scenario.warmup is not None and scenario.warmup >= scenario.horizon:
        found.append((("warmup",), f"must be shorter than the horizon ({scenario.horizon:g}s), got {scenario.warmup:g}s"))
    for name, (start, end) in scenario.windows.items():
        if not name or "." in name:   # the name becomes part of dotted metric names
            found.append((("windows", name), "a window's name must be non-empty text without dots"))
        if end > scenario.horizon:
            found.append((("windows", name), (f"must end within the horizon ({scenario.horizon:g}s), "
                                              f"got [{start:g}s, {end:g}s]")))
    if not scenario.arrivals:
        found.append((("arrivals",), "at least one arrival stream is needed"))
    if not stations:
        found.append((("stations",), "at least one station is needed"))
    for kind, names in (("stations", stations), ("arrivals", scenario.arrivals)):
        for name in names:
            if not name.strip():
                found.append(((kind,), f"a name must have at least one visible character, got {name!r}"))
    if DONE in stations:
        found.append((("stations", DONE), f"{DONE!r} is reserved for leaving the system; rename the station"))
    for name, arrival in scenario.arrivals.items():
        if arrival.enter is not None and arrival.enter not in stations:
            found.append((("arrivals", name, "enter"), f"unknown station {arrival.enter!r}{did_you_mean(arrival.enter, stations)}"))
    found += call_problems(stations)
    for name, station in stations.items():
        for index, target in enumerate(station.parallel):
            if target not in stations or target == name:
                found.append((("stations", name, "parallel", index),
                              f"expected another station, got {target!r}{did_you_mean(target, stations)}"))
            elif any(key in stations[target].model_fields_set for key in ("next", "classify", "parallel")):
                found.append((("stations", name, "parallel", index),
                              (f"{target!r} answers a parallel call, so it returns after its own service: "
                               "leave out its next, classify and parallel")))
        if station.reply and any(name in other.parallel or any(name in step.targets for step in other.calls)
                                 for other in stations.values()):
            found.append((("stations", name, "reply"), (f"{name!r} answers a parallel call, not the client: "
                                                        "leave out reply (put it on the calling station)")))
        if station.executor is not None and station.schedule:
            found.append((("stations", name, "schedule"), ("an executor sizes its own threads; "
                                                           "a schedule cannot be combined with it")))
        for target in station.routes:
            if target != DONE and target not in stations:
                found.append((("stations", name, "next"), f"unknown station {target!r}{did_you_mean(target, [*stations, DONE])}"))
        total = math.fsum(station.routes.values())
        if not sums_to_one(total):
            found.append((("stations", name, "next"), f"routing probabilities must sum to 1, got {total:.6g}"))
    if not found:
        from paysim.network import Network, can_leave  # it reads this package's models: imported late, no cycle
        from paysim.transient import backlog_problems

        leaving = can_leave({name: s.routes for name, s in stations.items()})
        for name in stations:
            if name not in leaving:
                found.append((("stations", name, "next"), "transactions that reach this station can never leave (every route leads back into a cycle)"))
        found += feature_problems(scenario, Network(scenario))
        found += backlog_problems(scenario)
    return found


def _shape_problem(data: Any) -> tuple[Path_, str] | None:
    """Data nested deeper or larger than any scenario (as a structure that contains itself is),
    which validating or even printing would exhaust the stack or memory on."""
    stack: list[tuple[Any, Path_]] = [(data, ())]
    budget = MAX_NODES
    while stack:
        node, path = stack.pop()
        budget -= 1
        if budget < 0:
            return (), f"more than {MAX_NODES:,} values in all; a scenario has a few hundred"
        if len(path) > MAX_DEPTH:
            return path[:4], f"nested more than {MAX_DEPTH} levels deep (or contains itself)"
        if isinstance(node, dict):
            stack.extend((value, path + (key,)) for key, value in node.items())
        elif isinstance(node, (list, tuple, set, frozenset)):
            stack.extend((value, path + (index,)) for index, value in enumerate(node))
    return None


def _apply(data: dict, overrides: Mapping[str, Any]) -> dict:
    data = copy.deepcopy(data)
    for dotted, value in overrides.items():
        node = data
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {}) if isinstance(node, dict) else node
        if isinstance(node, dict):
            node[last] = value
    return data


def scenario_from_data(data: Any, file: str, lines: Lines | None = None, base_dir: Path | None = None,
                       overrides: Mapping[str, Any] | None = None) -> Scenario:
    """Validate already-parsed YAML data (with optional dotted-key overrides)."""
    lines = dict(lines or {})
    shape = _shape_problem(data)
    if shape is not None:
        raise ScenarioError([Problem(file, shape[0], shape[1], _line(lines, shape[0]))])
    if overrides and isinstance(data, dict):
        data = _apply(data, overrides)
        for dotted in overrides:  # a value given on the command line has no line in the file
            lines[tuple(dotted.split("."))] = None  # type: ignore[assignment]
    if isinstance(data, dict) and "name" not in data:
        data = {**data, "name": Path(file).stem}
    context = {"base_dir": str(base_dir or Path(file).parent)}
    scenario, problems = _validate(data, file, lines, context)
    if scenario is not None:
        problems += [Problem(file, path, message, _line(lines, path)) for path, message in check_references(scenario)]
    if problems or scenario is None:
        raise ScenarioError(sorted(problems, key=lambda problem: problem.line or 0))
    return scenario


MAX_PASSES = 50  # validations of one file; each pass sets aside the unknown keys the last one found


def _validate(data: Any, file: str, lines: Lines, context: dict[str, Any]) -> tuple[Scenario | None, list[Problem]]:
    """Validate ``data``, gathering every unknown key rather than stopping at the first in each mapping.

    Pydantic stops checking a mapping at its first unknown key, so the keys found are set aside
    and the rest validated again until no unknown keys remain; a "required" error for a key
    that a did-you-mean already pointed at is left out as noise.
    """
    unknown: list[Problem] = []
    suggested: set[Path_] = set()
    current = data
    for _ in range(MAX_PASSES):
        try:
            scenario = Scenario.model_validate(current, context=context)
        except ValidationError as error:
            others: list[Problem] = []
            removed = False
            for item in error.errors(include_url=False):
                extra, message = _message(item)
                path = _data_path(current, item["loc"], keep_last=item["type"] == "missing") + extra
                problem = Problem(file, path, message, _line(lines, path))
                if item["type"] in ("unknown_key", "planned_key") and path:
                    if current is data:
                        current = copy.deepcopy(data)
                    removed = _remove(current, path) or removed
                    unknown.append(problem)
                    suggestion = (item.get("ctx") or {}).get("suggestion")
                    if suggestion is not None:
                        suggested.add(path[:-1] + (suggestion,))
                elif not (item["type"] == "missing" and path in suggested):
                    others.append(problem)
            if not removed:
                return None, unknown + others
        else:
            return scenario, unknown
    return None, unknown


def _remove(data: Any, path: Path_) -> bool:
    node = data
    for part in path[:-1]:
        found, _, node = _step(node, part)
        if not found:
            return False
    found, key, _ = _step(node, path[-1])
    if found and isinstance(node, dict):
        del node[key]
        return True
    return False


def load_scenario(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Scenario:
    """Read, validate and return the scenario in ``path``; raises ScenarioError listing every problem."""
    path = Path(path)
    data, lines = read_yaml(path)
    return scenario_from_data(data, str(path), lines, path.parent, overrides)
