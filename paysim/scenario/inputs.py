"""The files a scenario reads besides itself (empirical CSVs, replayed traces), with a hash of each one's bytes,
so a resumed sweep can tell whether the data behind its finished points changed."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel

from paysim import distributions as d
from paysim.trace import Trace


def files_read(*scenarios: BaseModel) -> dict[str, str]:
    """{file as the scenario names it: sha256 of the bytes read} over every given scenario."""
    found: dict[str, str] = {}
    stack: list[Any] = list(scenarios)
    while stack:
        node = stack.pop()
        if isinstance(node, (d.Empirical, Trace)):
            if node.source:
                found[node.source] = node.sha256
        elif isinstance(node, BaseModel):
            stack.extend(getattr(node, name) for name in type(node).model_fields)
            stack.extend((node.__pydantic_private__ or {}).values())   # a replayed trace is private
        elif isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(item for item in node if not isinstance(item, (int, float, str)))
        elif dataclasses.is_dataclass(node) and not isinstance(node, type):
            stack.extend(getattr(node, f.name) for f in dataclasses.fields(node))
    return dict(sorted(found.items()))
