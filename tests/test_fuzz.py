"""Generated and mutated scenarios: the loader accepts them or refuses them cleanly, nothing else.

Property: ``scenario_from_data`` returns a :class:`Scenario` or raises ScenarioError whose every
problem is one line naming the file; ``parse_yaml`` returns data or raises ScenarioError. No
other exception (TypeError, KeyError, pydantic's ValidationError, RecursionError, ...) may
escape, whatever the input. A scenario that is accepted must also survive the checks the
command runs before simulating (preflight).

The examples are derandomised, so a run is reproducible; test_validation.py has the
hand-written cases.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import sys
import tempfile
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st
from pydantic import BaseModel

from paysim.errors import MAX_SHOWN, ScenarioError
from paysim.preflight import expected_arrivals, stability_warnings
from paysim.scenario import DONE, Scenario, scenario_from_data
from paysim.scenario.fields import FAMILIES
from paysim.yamlio import parse_yaml, read_yaml

FILE = "fuzz.yaml"
SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
BASE = settings(derandomize=True, database=None, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])


def fuzz(examples: int) -> settings:
    return settings(BASE, max_examples=examples)

# A CSV for empirical distributions, beside the (virtual) fuzz.yaml.
BASE_DIR = Path(tempfile.mkdtemp(prefix="paysim-fuzz-"))
(BASE_DIR / "latencies.csv").write_text("ms\n12\n15\n9\n40\n", encoding="utf-8")
(BASE_DIR / "arrivals.csv").write_text("ts\n0\n0.5\n0.5\n2\n", encoding="utf-8")
for data_file in SCENARIOS.glob("*.csv"):   # what the example scenarios read
    (BASE_DIR / data_file.name).write_bytes(data_file.read_bytes())

# A scenario using every part of the language this version simulates (besides the example files).
RICH: dict[str, Any] = {
    "name": "rich",
    "description": "every family and option",
    "horizon": "10m",
    "warmup": 30,
    "replications": 3,
    "seed": 7,
    "slo": {"p99_latency": "800ms", "mean_latency": 0.2, "max_failure_rate": "0.1%"},
    "arrivals": {
        "card": {"rate": "450/s", "profile": [{"at": "0m", "x": 1.0}, {"at": "5m", "x": 2}], "enter": "gateway"},
        "batch": {"interarrival": {"dist": "uniform", "low": "1s", "high": "2s"}, "enter": "risk"},
        "even": {"rate": "1.2k/min", "process": "deterministic", "enter": "cache"},
        "replay": {"process": "trace", "file": "arrivals.csv", "column": "ts", "speed": "2x", "unit": "s",
                   "enter": "cache"},
    },
    "stations": {
        "gateway": {"workers": 32, "queue": 500, "service": {"dist": "lognormal", "mean": "12ms", "p99": "60ms"},
                    "next": {"risk": 0.9, "done": "10%"}},
        "risk": {"workers": 16, "service": {"dist": "gamma", "mean": "20ms", "cv": 0.6}, "next": "acquirer"},
        "acquirer": {"workers": 200, "service": {"dist": "lognormal", "median": "150ms", "p99": "1.2s"},
                     "next": "analysts"},
        "analysts": {"workers": 6, "service": {"dist": "empirical", "file": "latencies.csv", "column": "ms", "unit": "ms"}},
        "cache": {"service": "2ms", "queue": 0},
        "fraud": {"service": {"dist": "erlang", "mean": "20ms", "k": 4}},
        "spiky": {"service": {"dist": "hyperexponential", "mean": 0.02, "cv": 3}},
        "simple": {"service": {"dist": "exponential", "rate": "50/s"}},
        "slow": {"service": {"dist": "lognormal", "mean": "1s", "cv": 1.5}},
        "fixed": {"service": {"dist": "deterministic", "value": "5ms"}},
    },
}


def _example_files() -> dict[str, tuple[str, Any]]:
    """The scenario files in scenarios/ that load (sweep files are not scenarios): name -> (text, data)."""
    found = {}
    for path in sorted(SCENARIOS.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        data, lines = parse_yaml(text, path.name)
        try:
            scenario_from_data(data, path.name, lines, base_dir=SCENARIOS)
        except ScenarioError:
            continue
        found[path.name] = (text, data)
    return found


EXAMPLES = _example_files()
SEEDS: dict[str, Any] = {"rich": RICH, **{name: data for name, (_, data) in EXAMPLES.items()}}


def _model_keys(model: type[BaseModel], seen: set) -> set[str]:
    """Every key the scenario language knows (fields, aliases, planned keys), found by walking the models."""
    if model in seen:
        return set()
    seen.add(model)
    keys = set(getattr(model, "planned", ()))
    for name, info in model.model_fields.items():
        keys |= {name, info.alias or name}
        stack = [info.annotation]
        while stack:
            kind = stack.pop()
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                keys |= _model_keys(kind, seen)
            stack.extend(typing.get_args(kind))
    return keys


LANGUAGE_KEYS = sorted(_model_keys(Scenario, set()) | {"dist", "mean", "median", "p99", "cv", "k", "rate", "value",
                                                        "low", "high", "file", "column", "unit"})
NAMES = sorted({name for data in SEEDS.values() for part in ("arrivals", "stations") for name in data.get(part, {})})
WORDS = ["10ms", "0", "0s", "-3s", "1e-300", "1e300", "1e400", "-0.0", "2.5", "450/s", "0/s", "3k/min", "1.2M/h",
         "110%", "-10%", "0.5%", "100%", "5 parsecs", "12 kg", "ms", "/s", "%", "nan", ".nan", "inf", "-inf", "",
         " ", "\t", "\n", "µs", "2024-01-01", "yes", "no", "null", "~", "true", DONE, "latencies.csv", ".", "/",
         "/dev/zero", "nonexistent.csv", "[/red]", "{x}", "%s", "\x00", "\u2028", "💳", "a" * 300,
         *FAMILIES, *NAMES, *LANGUAGE_KEYS[:40]]

SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.integers(), st.integers(min_value=-(10**400), max_value=10**400), st.sampled_from([0, 1, -1, 2**63, 10**7, 10**7 + 1]),
    st.floats(), st.sampled_from([math.inf, -math.inf, math.nan, 0.0, -0.0, 1e-320, 5e-324, 1e308]),
    st.text(max_size=12), st.sampled_from(WORDS),
    st.binary(max_size=8), st.dates(), st.datetimes(), st.sampled_from([dt.date(1, 1, 1), dt.time(12, 0)]),
)
KEYS = st.one_of(st.sampled_from(LANGUAGE_KEYS + NAMES + WORDS[:20]), st.text(max_size=10), st.integers(),
                 st.none(), st.booleans(), st.floats(), st.dates(), st.binary(max_size=4))


def _containers(children):
    return st.one_of(st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=4),
                     st.tuples(children, children), st.frozensets(st.integers() | st.text(max_size=3), max_size=3))


JUNK = st.recursive(SCALARS, _containers, max_leaves=12)


def _paths(node: Any, path: tuple = ()) -> list[tuple]:
    """The key path of every value in ``node`` (mapping keys and list indexes), itself first."""
    found = [path]
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for name, child in children:
        found.extend(_paths(child, path + (name,)))
    return found


def _at(node: Any, path: tuple) -> Any:
    for part in path:
        node = node[part]
    return node


# ---------------------------------------------------------------- the property


def loads_or_refuses(data: Any, lines: dict | None = None) -> Scenario | ScenarioError:
    """The property: a Scenario, or a ScenarioError of one-line problems naming the file. Anything else fails."""
    try:
        scenario = scenario_from_data(data, FILE, lines, base_dir=BASE_DIR)
    except ScenarioError as error:
        return _clean(error)
    assert isinstance(scenario, Scenario)
    # what the command computes before simulating must work for whatever the loader accepts
    assert scenario.arrivals and scenario.stations and scenario.warmup < scenario.horizon
    for station in scenario.stations.values():
        assert set(station.routes) <= {DONE, *scenario.stations}
        assert abs(sum(station.routes.values()) - 1) < 1e-6
    assert expected_arrivals(scenario) >= 0
    for line in stability_warnings(scenario):
        assert isinstance(line, str)
    return scenario


def _clean(error: ScenarioError) -> ScenarioError:
    assert error.problems, "a ScenarioError must carry at least one problem"
    for problem in error.problems:
        text = str(problem)
        assert problem.file == FILE, text
        assert text.startswith(FILE), text
        assert len(text.splitlines()) == 1 and "\n" not in text, f"problem over several lines: {text!r}"
        assert problem.message.strip(), text
        assert problem.line is None or problem.line >= 1, text
    lines = str(error).splitlines()
    assert 1 <= len(lines) <= MAX_SHOWN + 1, str(error)
    return error


def parses_or_refuses(text: str) -> Any:
    """``parse_yaml`` gives (data, lines) or a clean ScenarioError; then the loader's property holds."""
    try:
        data, lines = parse_yaml(text, FILE)
    except ScenarioError as error:
        _clean(error)
        return error
    assert isinstance(lines, dict)
    return loads_or_refuses(data, lines)


def test_seeds_are_valid():
    assert len(EXAMPLES) >= 3, "the example scenarios should load"
    for name, data in SEEDS.items():
        assert isinstance(loads_or_refuses(copy.deepcopy(data)), Scenario), name


# ---------------------------------------------------------------- (a) random structures


@fuzz(150)
@given(data=JUNK)
def test_random_structure_as_a_whole_scenario(data):
    loads_or_refuses(data)


RICH_PATHS = [path for path in _paths(RICH) if path]  # every value of the rich scenario, by key path


@fuzz(400)
@given(path=st.sampled_from(RICH_PATHS), value=JUNK)
def test_random_structure_in_place_of_any_value(path, value):
    data = copy.deepcopy(RICH)
    _at(data, path[:-1])[path[-1]] = value
    loads_or_refuses(data)


@fuzz(100)
@given(path=st.sampled_from(RICH_PATHS), value=JUNK)
def test_random_structure_written_as_yaml(path, value):
    """The same through YAML text, so problems carry lines (values YAML cannot write are skipped)."""
    data = copy.deepcopy(RICH)
    _at(data, path[:-1])[path[-1]] = value
    try:
        text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, ValueError):
        return
    parses_or_refuses(text)


# ---------------------------------------------------------------- (b) mutations of the valid files


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    data = copy.deepcopy(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_paths(data)))
        node = _at(data, path)
        action = draw(st.sampled_from(["delete", "replace", "rename", "insert", "duplicate", "nest"]))
        if not isinstance(node, (dict, list)):
            if path:
                _at(data, path[:-1])[path[-1]] = draw(JUNK)
            continue
        members = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not members:
            action = "insert"
        member = draw(st.sampled_from(members)) if members else None
        if action == "delete":
            del node[member]
        elif action == "replace":
            node[member] = draw(JUNK)
        elif action == "duplicate" and isinstance(node, list):
            node.append(copy.deepcopy(node[member]))
        elif action == "duplicate":  # the same value under a second, similar name
            node[f"{member}_2" if isinstance(member, str) else draw(KEYS)] = copy.deepcopy(node[member])
        elif action == "nest":
            node[member] = draw(st.sampled_from([[node[member]], {"value": node[member]}, {member: node[member]}]))
        elif action == "rename" and isinstance(node, dict):
            new = draw(st.one_of(KEYS, st.sampled_from([str(member)[:-1], str(member) + "s", str(member).upper(),
                                                        str(member)[1:] + str(member)[:1]])))
            node[new] = node.pop(member)
        elif isinstance(node, dict):
            node[draw(KEYS)] = draw(JUNK)
        else:
            node.insert(draw(st.integers(0, len(node))), draw(JUNK))
    return data


@fuzz(500)
@given(data=mutated())
def test_mutated_scenario(data):
    loads_or_refuses(data)


@st.composite
def mutated_text(draw: st.DrawFn) -> str:
    """One of the example files with lines deleted, duplicated, swapped, re-indented or overwritten."""
    text = EXAMPLES[draw(st.sampled_from(sorted(EXAMPLES)))][0]
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["delete", "duplicate", "swap", "indent", "dedent", "splice", "truncate"]))
        if action == "delete" and len(lines) > 1:
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, lines[index])
        elif action == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[index], lines[other] = lines[other], lines[index]
        elif action == "indent":
            lines[index] = draw(st.sampled_from([" ", "  ", "\t", "- "])) + lines[index]
        elif action == "dedent":
            lines[index] = lines[index].lstrip()
        elif action == "splice":
            cut = draw(st.integers(0, len(lines[index])))
            lines[index] = lines[index][:cut] + draw(st.sampled_from(WORDS + [":", "- ", "&a ", "*a", "!!str ", "{", "]",
                                                                               "<<: ", "? ", "|", ">", "#", "'", '"'])) \
                + lines[index][cut:]
        else:
            lines[index] = lines[index][: draw(st.integers(0, len(lines[index])))]
    return "\n".join(lines) + "\n"


@fuzz(300)
@given(text=mutated_text())
def test_mutated_file_text(text):
    parses_or_refuses(text)


# ---------------------------------------------------------------- (c) random text and bytes


YAML_TOKENS = ["\n", "\n  ", "\n    ", " ", ": ", "- ", "? ", "[", "]", "{", "}", ", ", "&a ", "*a", "&b ", "*b", "<<: ",
               "!!str ", "!!int ", "!!float ", "!!binary ", "!!set ", "!!omap ", "!!timestamp ", "!!python/object:os.system ",
               "!local ", "%YAML 1.1\n", "---\n", "...\n", "|\n", ">-\n", "# c\n", "'", '"', "\\", "\t", "~", "null",
               "horizon", "arrivals", "stations", "service", "rate", "next", "workers", "dist", "card", "gateway",
               "10ms", "450/s", "0.5", "1e400", ".inf", ".nan", "-1", "0x1F", "0o17", "1_000", "2024-01-01", "yes"]


@fuzz(300)
@given(text=st.lists(st.sampled_from(YAML_TOKENS), max_size=40).map("".join))
def test_yaml_token_soup(text):
    parses_or_refuses(text)


@fuzz(200)
@given(text=st.text(max_size=300))
def test_random_text(text):
    parses_or_refuses(text)


@fuzz(150)
@given(raw=st.one_of(st.binary(max_size=300),
                     st.text(max_size=100).map(lambda t: t.encode("utf-16")),
                     st.sampled_from([b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff"])
                     .flatmap(lambda bom: st.binary(max_size=50).map(lambda tail: bom + tail))))
def test_random_bytes_as_a_file(raw):
    path = BASE_DIR / "fuzz.yaml"
    path.write_bytes(raw)
    try:
        data, lines = read_yaml(path)
    except ScenarioError as error:
        assert error.problems and all(problem.file == str(path) for problem in error.problems)
        assert all(len(str(problem).splitlines()) == 1 for problem in error.problems)
        return
    loads_or_refuses(data, lines)


# ---------------------------------------------------------------- shapes hypothesis rarely draws


def _nested(depth: int) -> Any:
    node: Any = "10ms"
    for level in range(depth):
        node = [node] if level % 2 else {"service": node}
    return node


@pytest.mark.parametrize("depth", [100, 5000])
def test_deeply_nested_data(depth):
    limit = sys.getrecursionlimit()
    data = copy.deepcopy(RICH)
    data["stations"]["gateway"]["service"] = _nested(depth)
    assert isinstance(loads_or_refuses(data), ScenarioError)
    data = copy.deepcopy(RICH)
    data["description"] = _nested(depth)
    assert isinstance(loads_or_refuses(data), ScenarioError)
    assert sys.getrecursionlimit() == limit


def test_data_that_contains_itself():
    data = copy.deepcopy(RICH)
    loop: list = []
    loop.append(loop)
    data["stations"]["gateway"]["next"] = loop
    data["arrivals"]["card"]["profile"] = loop
    assert isinstance(loads_or_refuses(data), ScenarioError)


ODD_VALUES = [math.nan, math.inf, -math.inf, 10**400, -(10**400), 2**64, 5e-324, -0.0, True, b"\x00",
              dt.date(2024, 1, 1), frozenset({1}), (1, 2), None, "", "\x00", "\n", "1e400"]


@pytest.mark.parametrize("value", ODD_VALUES, ids=[repr(value)[:20] for value in ODD_VALUES])
def test_odd_value_everywhere(value):
    """Every value of the rich scenario replaced, one at a time, by one odd value."""
    for path in RICH_PATHS:
        data = copy.deepcopy(RICH)
        _at(data, path[:-1])[path[-1]] = value
        loads_or_refuses(data)


ODD_KEYS = [None, True, 1, 1.5, math.nan, b"key", dt.date(2024, 1, 1), "", "\n", "a.b", "[/red]", "x" * 10_000]


@pytest.mark.parametrize("key", ODD_KEYS, ids=[repr(key)[:20] for key in ODD_KEYS])
def test_odd_key_everywhere(key):
    """An odd key inserted into every mapping of the rich scenario, one at a time."""
    for path in _paths(RICH):
        if isinstance(_at(RICH, path), dict):
            data = copy.deepcopy(RICH)
            _at(data, path)[key] = "10ms"
            loads_or_refuses(data)
