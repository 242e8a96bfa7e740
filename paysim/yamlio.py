"""Safe YAML reading that remembers the line of every key, for error messages.

Only YAML's plain data types are constructed (no tags that build objects), duplicate
keys are refused, and alias expansion and nesting are bounded so a "billion laughs"
file (or one nested thousands of levels deep, or an alias that contains itself) is
refused quickly instead of exhausting memory or the stack.

Two YAML 1.2 readings replace YAML 1.1's: numbers in exponent notation without a
decimal point (``1e-3``, ``2E6``) are numbers, not text; and only true/false are
booleans, so ``on``, ``off``, ``yes`` and ``no`` stay words.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from paysim.errors import Problem, ScenarioError

MAX_NODES = 200_000  # nodes visited with aliases expanded; real scenarios have a few hundred
MAX_DEPTH = 64  # mappings and lists inside each other; real scenarios nest about five deep
MAX_BYTES = 2_000_000  # a scenario file; real ones are a few kilobytes
_BOMS = [(b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
         (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16")]  # longest first: UTF-32 LE starts like UTF-16 LE

Lines = dict[tuple[str | int, ...], int]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_SCALAR_KINDS = {f"tag:yaml.org,2002:{tag}": kind for tag, kind in [
    ("int", "whole number"), ("float", "number"), ("bool", "boolean (true or false)"), ("timestamp", "date"),
    ("binary", "base64 text"), ("null", "null")]}
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


class _Limits(yaml.composer.Composer):
    """Composer hooks that refuse deep nesting and huge documents while they are being read."""

    depth = 0
    composed = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self.depth += 1
        self.composed += 1
        try:
            if self.depth > MAX_DEPTH + 1:
                raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep",
                                                  self.peek_event().start_mark)
            if self.composed > MAX_NODES:
                raise yaml.composer.ComposerError(None, None, f"more than {MAX_NODES:,} values; a scenario has "
                                                  "a few hundred", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


try:  # libyaml scans and parses several times faster; composing stays in Python, with the limits above
    from yaml.cyaml import CParser as _CParser
except ImportError:  # PyYAML built without libyaml
    _CParser = None

if _CParser is not None:
    class _Loader(_Limits, yaml.composer.Composer, _CParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
        """libyaml's parser under PyYAML's composer and safe constructor."""

        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
else:
    class _Loader(_Limits, yaml.SafeLoader):  # type: ignore[no-redef]
        """PyYAML's safe loader."""


# YAML 1.2 booleans: only true/false. YAML 1.1 also reads on/off/yes/no as booleans,
# which would turn a retry policy's ``on:`` key into ``True``.
_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789."))


class _Walk:
    """Records the line of every key path and refuses what a scenario cannot be."""

    def __init__(self, loader: yaml.SafeLoader, file: str) -> None:
        self.loader, self.file = loader, file
        self.lines: Lines = {}
        self.budget = MAX_NODES
        self.problems: list[Problem] = []
        self.open: set[int] = set()  # ids of the collections being walked, to catch an alias inside itself

    def refuse(self, path: tuple, message: str, node: yaml.Node) -> None:
        raise ScenarioError([Problem(self.file, path, message, node.start_mark.line + 1)])

    def key(self, node: yaml.Node, path: tuple) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            kind = "list" if isinstance(node, yaml.SequenceNode) else "mapping"
            self.refuse(path, f"a key must be a plain name, not a {kind}", node)
        if node.tag == _MERGE_TAG:
            return "<<"
        return self.construct(node, path)

    def construct(self, node: yaml.ScalarNode, path: tuple) -> Any:
        """The value of a scalar; one its tag cannot make (``!!int abc``, ``2024-13-45``) is refused."""
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, ArithmeticError):
            kind = _SCALAR_KINDS.get(node.tag, "value")
            shown = node.value if len(node.value) <= 40 else node.value[:37] + "..."
            self.refuse(path, f"{shown!r} is not a valid {kind} (put text in quotes)", node)

    def walk(self, node: yaml.Node, path: tuple, depth: int = 0) -> None:
        self.budget -= 1
        if self.budget < 0:
            self.refuse((), f"too many YAML nodes once aliases are expanded (> {MAX_NODES:,})", node)
        if depth > MAX_DEPTH:
            self.refuse(path, f"nested more than {MAX_DEPTH} levels deep", node)
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.ScalarNode):
            self.construct(node, path)  # kept by the loader, so building the document reuses it
            return
        if not isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            return
        if id(node) in self.open:
            self.refuse(path, "an alias (*name) refers to the mapping or list that contains it", node)
        self.open.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, path + (index,), depth + 1)
        else:
            self.mapping(node, path, depth)
        self.open.discard(id(node))

    def mapping(self, node: yaml.MappingNode, path: tuple, depth: int) -> None:
        seen: set = set()
        merged: list[yaml.Node] = []
        for key_node, value_node in node.value:
            key = self.key(key_node, path)
            if key == "<<" and key_node.tag == _MERGE_TAG:
                merged.append(value_node)
                continue
            if key in seen:
                self.problems.append(Problem(self.file, path + (key,), "duplicate key (each key may appear once)",
                                             key_node.start_mark.line + 1))
                continue
            seen.add(key)
            self.lines.setdefault(path + (key,), key_node.start_mark.line + 1)
            self.walk(value_node, path + (key,), depth + 1)
        # keys merged in with `<<: *anchor` take the line where they were written (explicit keys win)
        for value_node in merged:
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for source in sources:
                if isinstance(source, yaml.MappingNode) and id(source) not in self.open:
                    self.open.add(id(source))
                    self.mapping(source, path, depth)
                    self.open.discard(id(source))


def _problem_text(error: yaml.YAMLError, character: str | None = None) -> str:
    problem = getattr(error, "problem", None)
    context = getattr(error, "context", None)
    if isinstance(error, yaml.reader.ReaderError):
        if isinstance(error.character, int):
            return f"not valid YAML: the character #x{error.character:04x} is not allowed in YAML text"
        return f"not valid YAML: {error.reason}"
    if problem == "but found another document":
        return "a scenario is a single YAML document, but the file has a second one (after '---')"
    if problem == "found character that cannot start any token" and character is not None:
        problem = f"found character {character!r} that cannot start any token"  # as PyYAML's own parser says
    if problem and problem.startswith("found character '\\t'"):
        problem += "; indent with spaces, not tabs"
    tag = re.search(r"constructor for the tag '(?:tag:yaml\.org,2002:)?([^']*)'", problem or "")
    if tag:
        shown = f"!!{tag.group(1)}" if "tag:yaml.org,2002:" in (problem or "") else tag.group(1)
        return (f"the tag {shown!r} is not allowed: a scenario holds only plain data "
                "(mappings, lists, text, numbers, true/false)")
    if problem and context:
        return f"not valid YAML: {problem} ({context})"
    return f"not valid YAML: {problem or str(error).splitlines()[0]}"


def _mark_problem(file: str, error: yaml.YAMLError, text: str) -> Problem:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    line = mark.line + 1 if mark else None
    if isinstance(error, yaml.reader.ReaderError) and isinstance(error.position, int):
        if _CParser is not None:  # libyaml reports a byte offset into the UTF-8 text
            line = text.encode("utf-8", "surrogatepass")[: error.position].count(b"\n") + 1
        else:
            line = text.count("\n", 0, error.position) + 1
    character = None
    if mark is not None and line is not None:  # the character a scanner error is about
        lines = text.split("\n")
        if line - 1 < len(lines) and 0 <= mark.column < len(lines[line - 1]):
            character = lines[line - 1][mark.column]
    return Problem(file, (), _problem_text(error, character), line)


def parse_yaml(text: str, file: str) -> tuple[Any, Lines]:
    """The data of one YAML document and the line of every key path in it."""
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            raise ScenarioError([Problem(file, (), "the file is empty (expected a mapping of keys such as horizon, arrivals and stations)")])
        walk = _Walk(loader, file)
        walk.walk(node, ())
        if walk.problems:
            raise ScenarioError(walk.problems)
        return loader.construct_document(node), walk.lines
    except yaml.YAMLError as error:
        raise ScenarioError([_mark_problem(file, error, text)]) from None
    except RecursionError:
        raise ScenarioError([Problem(file, (), "the YAML is nested too deeply to read")]) from None
    except UnicodeEncodeError as error:  # a lone surrogate: text that was never valid Unicode
        line = text.count("\n", 0, error.start) + 1
        raise ScenarioError([Problem(file, (), "not valid YAML: the text holds a character that is not valid "
                                               f"Unicode ({text[error.start]!r})", line)]) from None
    finally:
        if loader is not None:
            loader.dispose()


def read_yaml(path: Path) -> tuple[Any, Lines]:
    """Read and parse a YAML file; every failure is a ScenarioError naming the file."""
    file = str(path)
    try:
        kind = os.stat(path).st_mode
        # a pipe (or socket) could block forever on open or read: check the type before opening
        if stat.S_ISFIFO(kind) or stat.S_ISSOCK(kind):
            raise ScenarioError([Problem(file, (), "not a regular file (a named pipe or socket); "
                                                   "a scenario is a YAML file")])
        with open(path, "rb") as handle:  # bounded: /dev/zero or a runaway pipe must not fill memory
            raw = handle.read(MAX_BYTES + 1)
    except (OSError, ValueError) as error:
        raise ScenarioError([Problem(file, (), f"cannot read the file: {getattr(error, 'strerror', None) or error}")]) from None
    if len(raw) > MAX_BYTES:
        raise ScenarioError([Problem(file, (), f"the file is larger than {MAX_BYTES // 1_000_000} MB; "
                                               "a scenario is YAML text of a few kilobytes")])
    encoding = next((name for bom, name in _BOMS if raw.startswith(bom)), None)
    if encoding is not None:
        raise ScenarioError([Problem(file, (), f"the file is {encoding} text; save it as UTF-8 (a scenario must be UTF-8)")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise ScenarioError([Problem(file, (), f"not a UTF-8 text file (byte {error.start} is 0x{raw[error.start]:02x}); "
                                               "a scenario must be YAML text", line)]) from None
    return parse_yaml(text, file)
