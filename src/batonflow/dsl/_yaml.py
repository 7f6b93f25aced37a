"""Reading workflow documents: YAML 1.2 or JSON text to plain JSON data, with the position of
every node.

The text is composed with ruamel.yaml into a node tree and converted here, so the rules are
ours and few: YAML 1.2 core schema scalars (``on``, ``yes`` and ``no`` stay strings; dates stay
strings), JSON-style string keys, merge keys (``<<``) honoured, duplicate keys reported (the
last value wins, as in JSON). JSON text is read by :mod:`json` (the data) and composed as YAML
(JSON is YAML 1.2) only for the positions.

Positions are 1-based ``(line, column)`` pairs keyed by JSON pointer (RFC 6901): ``entries``
holds where each node's entry starts (a mapping member's key, a list item, the root) and
``values`` where the value itself starts.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.resolver import BaseResolver

from batonflow import _limits

__all__ = [
    "DuplicateKey",
    "Parsed",
    "Position",
    "Positions",
    "SourceSyntaxError",
    "escape_pointer",
    "is_json_text",
    "join_pointer",
    "parse_text",
    "split_pointer",
]

_CORE = "tag:yaml.org,2002:"


class Position(NamedTuple):
    """A place in the text: 1-based line and column."""

    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.line}:{self.column}"


class SourceSyntaxError(Exception):
    """Text that is not YAML or JSON; ``position`` is where reading stopped."""

    def __init__(self, message: str, position: Position | None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


@dataclass(frozen=True, slots=True)
class DuplicateKey:
    """A key given twice in one mapping; the later value was kept."""

    pointer: str
    key: str
    position: Position
    first: Position


@dataclass(frozen=True, slots=True)
class Positions:
    """Where every node of a document is, by JSON pointer."""

    entries: Mapping[str, Position] = field(default_factory=dict)
    values: Mapping[str, Position] = field(default_factory=dict)

    def at(self, pointer: str) -> Position | None:
        """Where the node's entry starts, or else its nearest located ancestor's."""
        return _nearest(self.entries, pointer)

    def value_at(self, pointer: str) -> Position | None:
        """Where the node's value starts, or else its nearest located ancestor's."""
        return _nearest(self.values, pointer)


@dataclass(frozen=True, slots=True)
class Parsed:
    data: Any
    positions: Positions
    duplicates: tuple[DuplicateKey, ...] = ()


# -- JSON pointers --------------------------------------------------------------------------------


def escape_pointer(segment: str | int) -> str:
    return str(segment).replace("~", "~0").replace("/", "~1")


def join_pointer(base: str, *segments: str | int) -> str:
    return base + "".join("/" + escape_pointer(s) for s in segments)


def split_pointer(pointer: str) -> list[str]:
    if not pointer:
        return []
    return [s.replace("~1", "/").replace("~0", "~") for s in pointer[1:].split("/")]


def _nearest(table: Mapping[str, Position], pointer: str) -> Position | None:
    while True:
        found = table.get(pointer)
        if found is not None or not pointer:
            return found
        pointer = pointer[: pointer.rfind("/")]


# -- reading --------------------------------------------------------------------------------------


def is_json_text(text: str, source: str = "") -> bool:
    """Whether to read ``text`` as JSON: a ``.json`` file, or (unless the file is ``.yaml`` or
    ``.yml``) text that opens an object."""
    suffix = source.lower().rpartition(".")[2] if "." in source else ""
    if suffix in ("yaml", "yml"):
        return False
    return suffix == "json" or text.lstrip().startswith("{")


def parse_text(text: str, source: str = "") -> Parsed:
    """The data in ``text`` (YAML 1.2 or JSON) with its positions.

    Raises :class:`SourceSyntaxError` for text that cannot be read, or that is over the bounds
    of :mod:`batonflow._limits`: its length, its nesting, the values its YAML aliases expand
    to, a lone surrogate. A ``.json`` file must be JSON; other text that opens an object is
    read as JSON if it is, else as YAML (a flow mapping).
    """
    _check_text(text)
    if not is_json_text(text, source):
        return _Converter().convert(_compose(text))
    try:
        return _parse_json(text)
    except SourceSyntaxError:
        if source.lower().endswith(".json"):
            raise
    return _Converter().convert(_compose(text))


def _check_text(text: str) -> None:
    limit = _limits.MAX_DOCUMENT_BYTES
    if len(text) > limit:
        raise SourceSyntaxError(
            f"the document is {len(text)} characters long; the limit is {limit}",
            Position(*_limits.line_column(text, limit)),
        )
    found = _limits.SURROGATE_CHAR.search(text)
    if found is not None:
        raise SourceSyntaxError(
            _limits.SURROGATE, Position(*_limits.line_column(text, found.start()))
        )


def _parse_json(text: str) -> Parsed:
    try:
        _limits.check_json_text(text, max_bytes=_limits.MAX_DOCUMENT_BYTES)
    except _limits.TextLimitError as exc:
        where = Position(*_limits.line_column(text, exc.offset))
        raise SourceSyntaxError(f"the document is over a limit: {exc.message}", where) from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise SourceSyntaxError(
            f"invalid JSON: {exc.msg}", Position(exc.lineno, exc.colno)
        ) from None
    try:
        located = _Converter().convert(_compose(text))
    except SourceSyntaxError:  # valid JSON that YAML cannot read (a raw DEL character)
        return Parsed(data, Positions({"": Position(1, 1)}, {"": Position(1, 1)}))
    return Parsed(data, located.positions, located.duplicates)


def _reject_constant(constant: str) -> Any:
    raise json.JSONDecodeError(f"{constant} is not a JSON value", constant, 0)


def _compose(text: str) -> Node:
    yaml = YAML(typ="safe", pure=True)
    yaml.Resolver = _CoreResolver
    try:
        _check_events(yaml, text)
        node = yaml.compose(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Position(mark.line + 1, mark.column + 1) if mark is not None else None
        raise SourceSyntaxError(f"invalid YAML: {_yaml_message(exc)}", where) from None
    except YAMLError as exc:
        raise SourceSyntaxError(f"invalid YAML: {exc}", None) from None
    if node is None:
        raise SourceSyntaxError("the document is empty", Position(1, 1))
    return node  # type: ignore[no-any-return]


def _check_events(yaml: YAML, text: str) -> None:
    """Nesting and alias count from the parser's events (a loop, not recursion), before the
    composer (which recurses) sees the text."""
    depth = aliases = 0
    for event in yaml.parse(text):
        if isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > _limits.MAX_DEPTH:
                raise SourceSyntaxError(
                    f"the document nests deeper than {_limits.MAX_DEPTH} levels",
                    _mark(event.start_mark),
                )
        elif isinstance(event, CollectionEndEvent):
            depth -= 1
        elif isinstance(event, AliasEvent):
            aliases += 1
            if aliases > _MAX_ALIASES:
                raise SourceSyntaxError(
                    f"the document uses more than {_MAX_ALIASES} aliases", _mark(event.start_mark)
                )


_MAX_ALIASES = 10_000


def _mark(mark: Any) -> Position | None:
    return Position(mark.line + 1, mark.column + 1) if mark is not None else None


def _yaml_message(exc: MarkedYAMLError) -> str:
    parts = [p for p in (exc.problem, exc.context) if p]
    return "; ".join(str(p).strip() for p in parts) or "cannot be read"


class _CoreResolver(BaseResolver):
    """The YAML 1.2 core schema: only these plain scalars are not strings."""

    def __init__(self, version: Any = None, loader: Any = None) -> None:
        super().__init__(loader)

    @property
    def processing_version(self) -> Any:
        return (1, 2)


_CORE_SCALARS = [
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+0123456789."),
    ),
]
_CoreResolver.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in _CORE_SCALARS:
    _CoreResolver.add_implicit_resolver_base(_CORE + _tag, re.compile(_pattern), _first)


# -- node tree to JSON data -----------------------------------------------------------------------


def _position(node: Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


class _Converter:
    def __init__(self) -> None:
        self.entries: dict[str, Position] = {}
        self.values: dict[str, Position] = {}
        self.duplicates: list[DuplicateKey] = []
        self._open: set[int] = set()  # nodes being converted: an alias back into them loops
        self._seen: set[int] = set()  # nodes converted at least once
        self._repeated = 0  # values converted again through aliases (bounded: an alias bomb)
        self._depth = 0

    def convert(self, root: Node) -> Parsed:
        self.entries[""] = _position(root)
        data = self.node(root, "")
        return Parsed(data, Positions(self.entries, self.values), tuple(self.duplicates))

    def node(self, node: Node, pointer: str) -> Any:
        if id(node) in self._seen:  # reached again: through an alias
            self._repeated += 1
            if self._repeated > _limits.MAX_NODES:
                raise SourceSyntaxError(
                    f"YAML aliases in the document repeat more than {_limits.MAX_NODES} values"
                    " (an alias repeats all that its anchor holds); the limit is reached here",
                    _position(node),
                )
        else:
            self._seen.add(id(node))
        self.values.setdefault(pointer, _position(node))
        if isinstance(node, ScalarNode):
            return _scalar(node)
        if id(node) in self._open:
            raise SourceSyntaxError("an alias refers to a node that contains it", _position(node))
        if self._depth >= _limits.MAX_DEPTH:
            raise SourceSyntaxError(
                f"the document nests deeper than {_limits.MAX_DEPTH} levels (aliases included)",
                _position(node),
            )
        self._open.add(id(node))
        self._depth += 1
        try:
            if isinstance(node, SequenceNode):
                return self.sequence(node, pointer)
            if isinstance(node, MappingNode):
                return self.mapping(node, pointer)
        finally:
            self._open.discard(id(node))
            self._depth -= 1
        raise SourceSyntaxError("unsupported YAML node", _position(node))

    def sequence(self, node: SequenceNode, pointer: str) -> list[Any]:
        items = []
        for index, item in enumerate(node.value):
            here = join_pointer(pointer, index)
            self.entries.setdefault(here, _position(item))
            items.append(self.node(item, here))
        return items

    def mapping(self, node: MappingNode, pointer: str) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first: dict[str, Position] = {}
        for key_node, value_node in self._pairs(node):
            key = _key(key_node)
            here = join_pointer(pointer, key)
            if key in first:
                self._duplicate(here, key, key_node, first[key])
                self.values.pop(here, None)
            first[key] = _position(key_node)
            self.entries[here] = first[key]
            result[key] = self.node(value_node, here)
        return result

    def _duplicate(self, pointer: str, key: str, key_node: Node, first: Position) -> None:
        self.duplicates.append(DuplicateKey(pointer, key, _position(key_node), first))

    def _pairs(self, node: MappingNode) -> Iterator[tuple[Node, Node]]:
        """The mapping's own pairs after the pairs merged in by ``<<`` (own keys win)."""
        own = [(k, v) for k, v in node.value if not _is_merge(k, v)]
        own_keys = {_key(k) for k, _ in own if isinstance(k, ScalarNode)}
        for key_node, value_node in node.value:
            if _is_merge(key_node, value_node):
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for source in sources:
                    for pair in self._pairs(source):
                        if _key(pair[0]) not in own_keys:
                            yield pair
        yield from own


def _is_merge(key: Node, value: Node) -> bool:
    if not (isinstance(key, ScalarNode) and key.style is None and key.value == "<<"):
        return False
    if isinstance(value, MappingNode):
        return True
    return isinstance(value, SequenceNode) and all(isinstance(v, MappingNode) for v in value.value)


def _key(node: Node) -> str:
    if not isinstance(node, ScalarNode):
        raise SourceSyntaxError("a mapping key must be a string, not a collection", _position(node))
    value = _scalar(node)
    return value if isinstance(value, str) else json.dumps(value)


def _scalar(node: ScalarNode) -> Any:
    tag = str(node.tag)
    text: str = node.value
    if _limits.SURROGATE_CHAR.search(text):  # "\ud83d\ude00" is one character; "\ud800" none
        try:
            text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
        except UnicodeDecodeError:
            raise SourceSyntaxError(_limits.SURROGATE, _position(node)) from None
    if not tag.startswith(_CORE):
        return text
    kind = tag[len(_CORE) :]
    try:
        if kind == "null":
            return None
        if kind == "bool":
            return text.lower() == "true"
        if kind == "int":
            return _int(text)
        if kind == "float":
            number = _float(text)
            if not math.isfinite(number):
                raise SourceSyntaxError(
                    f"{text!r} is not a JSON number (infinity and NaN cannot be recorded)",
                    _position(node),
                )
            return number
    except ValueError:
        raise SourceSyntaxError(f"{text!r} is not a valid !!{kind}", _position(node)) from None
    return text


def _int(text: str) -> int:
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


def _float(text: str) -> float:
    lowered = text.lower()
    if lowered.endswith(".inf"):
        return -math.inf if lowered.startswith("-") else math.inf
    if lowered == ".nan":
        return math.nan
    return float(text)
