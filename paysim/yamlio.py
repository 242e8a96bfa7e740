"""Safe YAML reading that remembers the line of every key, for error messages.

Only YAML's plain data types are constructed (no tags that build objects), duplicate
keys are refused, and alias expansion is bounded so a "billion laughs" file is
refused quickly instead of exhausting memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from paysim.errors import Problem, ScenarioError

MAX_NODES = 200_000  # nodes visited with aliases expanded; real scenarios have a few hundred

Lines = dict[tuple[str | int, ...], int]


def _walk(node: yaml.Node, path: tuple, lines: Lines, budget: list[int], file: str) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise ScenarioError([Problem(file, (), f"too many YAML nodes once aliases are expanded (> {MAX_NODES:,})")])
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise ScenarioError([Problem(file, path + (key,), "duplicate key", key_node.start_mark.line + 1)])
            seen.add(key)
            lines.setdefault(path + (key,), key_node.start_mark.line + 1)
            _walk(value_node, path + (key,), lines, budget, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, path + (index,), lines, budget, file)


def _mark_problem(file: str, error: yaml.YAMLError) -> Problem:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    reason = getattr(error, "problem", None) or str(error).splitlines()[0]
    return Problem(file, (), f"not valid YAML: {reason}", mark.line + 1 if mark else None)


def parse_yaml(text: str, file: str) -> tuple[Any, Lines]:
    """The data of one YAML document and the line of every key path in it."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ScenarioError([Problem(file, (), "the file is empty")])
        lines: Lines = {}
        _walk(node, (), lines, [MAX_NODES], file)
        return loader.construct_document(node), lines
    except yaml.YAMLError as error:
        raise ScenarioError([_mark_problem(file, error)]) from None
    finally:
        loader.dispose()


def read_yaml(path: Path) -> tuple[Any, Lines]:
    """Read and parse a YAML file; every failure is a ScenarioError naming the file."""
    file = str(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ScenarioError([Problem(file, (), f"cannot read the file: {error.strerror or error}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ScenarioError([Problem(file, (), f"not a UTF-8 text file (byte {error.start})")]) from None
    return parse_yaml(text, file)
