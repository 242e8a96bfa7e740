"""Reading a scenario file into a validated :class:`Scenario`, or a report of every problem.

Validation happens in two passes: pydantic checks each key's type and unit, then
:func:`check_references` checks what only the whole scenario can tell (routes to
unknown stations, probabilities that do not sum to one, transactions that can never
leave, a warm-up longer than the run).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from paysim.errors import KeyPathError, Problem, ScenarioError
from paysim.scenario.fields import did_you_mean
from paysim.scenario.models import DONE, Scenario
from paysim.yamlio import Lines, read_yaml

Path_ = tuple[str | int, ...]


def _line(lines: Lines, path: Path_) -> int | None:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def _data_path(data: Any, loc: tuple, keep_last: bool) -> Path_:
    """The part of pydantic's error location that names keys the user wrote."""
    path: list[str | int] = []
    current = data
    for index, part in enumerate(loc):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and part < len(current):
            current = current[part]
        elif keep_last and index == len(loc) - 1:
            pass
        else:
            continue  # a union tag or validator name, not a key
        path.append(part)
    return tuple(path)


def _message(error: dict[str, Any]) -> tuple[Path_, str]:
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
    elif "input" in error and "got" not in message:
        message = f"{message[0].lower()}{message[1:]}, got {error['input']!r}"[:200]
    return extra, message


def problems_from_validation(error: ValidationError, data: Any, file: str, lines: Lines) -> list[Problem]:
    problems = []
    for item in error.errors(include_url=False):
        extra, message = _message(item)
        path = _data_path(data, item["loc"], keep_last=item["type"] == "missing") + extra
        problems.append(Problem(file, path, message, _line(lines, path)))
    return problems


def _leavers(routes: Mapping[str, Mapping[str, float]]) -> set[str]:
    """Stations from which a transaction can eventually reach ``done``."""
    can_leave = {DONE}
    changed = True
    while changed:
        changed = False
        for name, targets in routes.items():
            if name not in can_leave and any(p > 0 and t in can_leave for t, p in targets.items()):
                can_leave.add(name)
                changed = True
    return can_leave


def check_references(scenario: Scenario) -> list[tuple[Path_, str]]:
    """Problems that only the whole scenario can show, as (key path, message)."""
    found: list[tuple[Path_, str]] = []
    stations = scenario.stations
    if scenario.warmup >= scenario.horizon:
        found.append((("warmup",), f"must be shorter than the horizon ({scenario.horizon:g}s), got {scenario.warmup:g}s"))
    if not scenario.arrivals:
        found.append((("arrivals",), "at least one arrival stream is needed"))
    if not stations:
        found.append((("stations",), "at least one station is needed"))
    if DONE in stations:
        found.append((("stations", DONE), f"{DONE!r} is reserved for leaving the system; rename the station"))
    for name, arrival in scenario.arrivals.items():
        if arrival.enter is not None and arrival.enter not in stations:
            found.append((("arrivals", name, "enter"), f"unknown station {arrival.enter!r}{did_you_mean(arrival.enter, stations)}"))
    for name, station in stations.items():
        for target in station.routes:
            if target != DONE and target not in stations:
                found.append((("stations", name, "next"), f"unknown station {target!r}{did_you_mean(target, [*stations, DONE])}"))
        total = sum(station.routes.values())
        if abs(total - 1.0) > 1e-6:
            found.append((("stations", name, "next"), f"routing probabilities must sum to 1, got {total:.6g}"))
    if not found:
        can_leave = _leavers({name: s.routes for name, s in stations.items()})
        for name in stations:
            if name not in can_leave:
                found.append((("stations", name, "next"), "transactions that reach this station can never leave (every route leads back into a cycle)"))
    return found


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
    lines = lines or {}
    if overrides and isinstance(data, dict):
        data = _apply(data, overrides)
    if isinstance(data, dict) and "name" not in data:
        data = {**data, "name": Path(file).stem}
    context = {"base_dir": str(base_dir or Path(file).parent)}
    try:
        scenario = Scenario.model_validate(data, context=context)
    except ValidationError as error:
        raise ScenarioError(problems_from_validation(error, data, file, lines)) from None
    found = check_references(scenario)
    if found:
        raise ScenarioError([Problem(file, path, message, _line(lines, path)) for path, message in found])
    return scenario


def load_scenario(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Scenario:
    """Read, validate and return the scenario in ``path``; raises ScenarioError listing every problem."""
    path = Path(path)
    data, lines = read_yaml(path)
    return scenario_from_data(data, str(path), lines, path.parent, overrides)
