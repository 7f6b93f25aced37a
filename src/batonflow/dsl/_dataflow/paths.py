"""What a jq expression reads, found without running it (for ``batonflow dataflow``).

A small lexer and a smaller parser find the *path references* in a runtime expression: ``.a.b``,
``.a[0].b``, ``.["x"]``, ``$input.x``, ``$context.y``, the object shorthand ``{from}`` (which is
``{from: .from}``) and the paths inside string interpolations. A filter that takes its input
whole (``keys``, ``tojson``, ``map(...)`` at the start of an expression, a bare ``.``) counts as a
reference to the whole input. The result over-approximates: every part of the input the
expression can read is named (a relative path inside ``map(.x)`` is named as if from the top,
which names too much, never too little).

Shapes model what a value is built from: the workflow input at a path (:class:`FromInput`), an
object with known keys (:class:`Obj`), or data of unknown structure drawn from known sources
(:class:`Data`): input fields such as ``.from``, or labels such as ``response of getPet``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from batonflow.dsl._expr import is_expression

__all__ = [
    "Data",
    "FromInput",
    "Obj",
    "Reference",
    "Shape",
    "expression_shape",
    "field_name",
    "flatten",
    "join",
    "references",
    "resolve",
    "shape_of",
]

#: jq words that take no input, or are syntax: seeing one does not mean "reads the input".
_NO_INPUT: Final = frozenset(
    [
        "if",
        "then",
        "elif",
        "else",
        "end",
        "and",
        "or",
        "as",
        "def",
        "reduce",
        "foreach",
        "label",
        "import",
        "include",
        "try",
        "catch",
        "true",
        "false",
        "null",
        "empty",
        "now",
        "not",
        "error",
        "break",
        "input_line_number",
    ]
)
_TOKEN = re.compile(
    r"""(?P<ws>\s+|\#[^\n]*)
    |(?P<var>\$[A-Za-z_][A-Za-z0-9_]*)
    |(?P<dotdot>\.\.)
    |(?P<field>\.[A-Za-z_][A-Za-z0-9_]*)
    |(?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)
    |(?P<dot>\.)
    |(?P<ident>@?[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*)
    |(?P<punct>[\[\]{}(),:|?;])
    |(?P<op>[^\s\w"\[\]{}(),:|?;.$#]+)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Reference:
    """``base`` (``.`` or a variable such as ``$context``) followed by ``path`` segments
    (``a``, ``[0]`` or ``[]``)."""

    base: str
    path: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    text: str
    value: str = ""  # a string literal's value (when it has no interpolation)
    inner: tuple[str, ...] = ()  # a string's interpolated expressions


def _lex(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    i = 0
    while i < len(text):
        if text[i] == '"':
            i = _string(text, i, tokens)
            continue
        match = _TOKEN.match(text, i)
        if match is None:  # pragma: no cover - the op group takes any other character
            i += 1
            continue
        kind = match.lastgroup or "op"
        if kind != "ws":
            tokens.append(_Tok(kind, match.group()))
        i = match.end()
    return tokens


def _string(text: str, start: int, tokens: list[_Tok]) -> int:
    """Lex the string literal at ``start``; return where it ends."""
    i = start + 1
    value: list[str] = []
    inner: list[str] = []
    while i < len(text) and text[i] != '"':
        if text[i] == "\\" and i + 1 < len(text):
            if text[i + 1] == "(":
                depth, j = 1, i + 2
                while j < len(text) and depth:
                    depth += {"(": 1, ")": -1}.get(text[j], 0)
                    j += 1
                inner.append(text[i + 2 : j - 1])
                i = j
                continue
            value.append(text[i + 1])
            i += 2
            continue
        value.append(text[i])
        i += 1
    tokens.append(_Tok("str", text[start : i + 1], "".join(value), tuple(inner)))
    return i + 1


def references(expression: str) -> list[Reference]:
    """Every path reference in ``expression`` (``${ ... }`` or bare jq), in order."""
    match = re.fullmatch(r"\s*\$\{(.+)\}\s*", expression, re.DOTALL)
    return _Parser(_lex(match.group(1) if match else expression)).references()


class _Parser:
    def __init__(self, tokens: list[_Tok]) -> None:
        self.tokens = tokens

    def references(self) -> list[Reference]:
        found: list[Reference] = []
        tokens = self.tokens
        braces: list[bool] = []  # per open bracket: is it an object's { }
        key_position = False  # inside { } where a key may stand
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            before = tokens[i - 1] if i else None
            after = tokens[i + 1] if i + 1 < len(tokens) else None
            if tok.kind == "str":
                for inner in tok.inner:
                    found.extend(references(inner))
            if key_position and tok.kind in ("ident", "var", "str") and after is not None:
                if after.text in (",", "}") and tok.kind != "str":
                    found.append(
                        Reference(".", (tok.text,)) if tok.kind == "ident" else Reference(tok.text)
                    )
                    i += 1
                    key_position = False
                    continue
                if after.text == ":":  # a key: a name, not a path
                    i += 2
                    key_position = False
                    continue
            key_position = False
            if tok.text in ("{", "(", "["):
                braces.append(tok.text == "{")
                key_position = tok.text == "{"
            elif tok.text in ("}", ")", "]"):
                if braces:
                    braces.pop()
            elif tok.text == "," and braces and braces[-1]:
                key_position = True
            if tok.kind in ("field", "dot", "dotdot", "var"):
                if tok.kind == "var" and before is not None and before.text == "as":
                    i += 1
                    continue
                reference, i = self.path(i)
                if reference is not None:
                    found.append(reference)
                continue
            if tok.kind == "ident" and tok.text not in _NO_INPUT and self._takes_input(before):
                found.append(Reference("."))
            i += 1
        return found

    @staticmethod
    def _takes_input(before: _Tok | None) -> bool:
        """A filter named where its input is the expression's own input (not a pipe's)."""
        if before is None:
            return True
        if before.text in ("|", "as", "def", "label", "break") or before.kind in ("field", "str"):
            return False
        return before.kind in ("punct", "op") or before.text in ("and", "or", "then", "else")

    def path(self, i: int) -> tuple[Reference | None, int]:
        """The path starting at token ``i``, and the index after it."""
        tokens = self.tokens
        tok = tokens[i]
        if tok.kind == "dotdot":
            return Reference("."), i + 1
        if tok.text == "$__loc__":
            return None, i + 1
        base = "." if tok.kind in ("field", "dot") else tok.text
        segments: list[str] = [tok.text[1:]] if tok.kind == "field" else []
        i += 1
        while i < len(tokens):
            tok = tokens[i]
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            if tok.kind == "field":
                segments.append(tok.text[1:])
                i += 1
            elif tok.kind == "dot" and nxt is not None and nxt.kind == "str" and not nxt.inner:
                segments.append(nxt.value)
                i += 2
            elif tok.kind == "dot" and nxt is not None and nxt.text == "[":
                i += 1
            elif tok.text == "[":
                segment, end = self._index(i)
                if segment is None:
                    break
                segments.append(segment)
                i = end
            elif tok.text == "?":
                i += 1
            else:
                break
        return Reference(base, tuple(segments)), i

    def _index(self, i: int) -> tuple[str | None, int]:
        """``[]``, ``[0]`` or ``["key"]`` at ``i``: the segment and the index after it."""
        tokens = self.tokens
        if i + 1 < len(tokens) and tokens[i + 1].text == "]":
            return "[]", i + 2
        if i + 2 < len(tokens) and tokens[i + 2].text == "]":
            inner = tokens[i + 1]
            if inner.kind == "num":
                return f"[{inner.text}]", i + 3
            if inner.kind == "str" and not inner.inner:
                return inner.value, i + 3
        return None, i


# -- shapes ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FromInput:
    """The workflow's (raw) input at ``path``: ``()`` is the whole input."""

    path: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Data:
    """A value of unknown structure made from ``sources``: input fields (``.from``) or labels
    (``response of getPet``). No sources: constants only."""

    sources: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Obj:
    """An object with known ``entries``; keys not listed come from ``rest`` (``. + {...}``)."""

    entries: tuple[tuple[str, Shape], ...]
    rest: Shape | None = None

    def get(self, key: str) -> Shape | None:
        return next((shape for name, shape in self.entries if name == key), None)


Shape = FromInput | Data | Obj
_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_DEPTH: Final = 6


def field_name(path: tuple[str, ...]) -> str:
    """``(a, [0], b)`` as ``.a[0].b``; the whole input is ``.``."""
    text = "".join(s if s.startswith("[") else _segment(s) for s in path)
    return text or "."


def _segment(name: str) -> str:
    return f".{name}" if _IDENTIFIER.fullmatch(name) else f'.["{name}"]'


def flatten(shape: Shape) -> frozenset[str]:
    """Every source of ``shape``'s parts."""
    if isinstance(shape, FromInput):
        return frozenset({field_name(shape.path)})
    if isinstance(shape, Data):
        return shape.sources
    found: set[str] = set()
    for _, entry in shape.entries:
        found |= flatten(entry)
    if shape.rest is not None:
        found |= flatten(shape.rest)
    return frozenset(found)


def resolve(shape: Shape, path: tuple[str, ...]) -> Shape:
    """The part of ``shape`` at ``path``."""
    if not path:
        return shape
    if isinstance(shape, FromInput):
        return FromInput((*shape.path, *path))
    if isinstance(shape, Data):
        return shape
    head, tail = path[0], path[1:]
    if head.startswith("["):  # an index or every element: any entry may answer
        return Data(flatten(shape))
    entry = shape.get(head)
    if entry is not None:
        return resolve(entry, tail)
    return resolve(shape.rest, path) if shape.rest is not None else Data()


def join(a: Shape, b: Shape) -> Shape:
    """A shape covering both (data that is either)."""
    if a == b:
        return a
    if (
        isinstance(a, Obj)
        and isinstance(b, Obj)
        and _keys(a) == _keys(b)
        and (a.rest is None) == (b.rest is None)
        and _depth(a) < _MAX_DEPTH
    ):
        entries = tuple((k, join(v, b.get(k) or Data())) for k, v in a.entries)
        rest = join(a.rest, b.rest) if a.rest is not None and b.rest is not None else None
        return Obj(entries, rest)
    if isinstance(b, FromInput) and isinstance(a, Obj):
        a, b = b, a
    if isinstance(a, FromInput) and isinstance(b, Obj) and _depth(b) < _MAX_DEPTH:
        # either the input or the object: a key reads either; other keys come from the input
        entries = tuple((k, join(resolve(a, (k,)), v)) for k, v in b.entries)
        return Obj(entries, a if b.rest is None else join(a, b.rest))
    return Data(flatten(a) | flatten(b))


def _keys(shape: Obj) -> list[str]:
    return [k for k, _ in shape.entries]


def _depth(shape: Shape) -> int:
    if not isinstance(shape, Obj):
        return 0
    inner = [_depth(v) for _, v in shape.entries] + ([_depth(shape.rest)] if shape.rest else [])
    return 1 + max(inner, default=0)


def shape_of(value: Any, variables: dict[str, Shape], data: Shape) -> Shape:
    """The shape of a template (objects, lists, literals, ``${ }`` strings) or of an expression
    given where a field takes bare jq: ``data`` is ``.``, ``variables`` the ``$names`` known."""
    if isinstance(value, str):
        if not is_expression(value):
            return Data()
        return _expression(_lex(re.sub(r"^\s*\$\{|\}\s*$", "", value)), variables, data)
    if isinstance(value, dict):
        return Obj(tuple((str(k), shape_of(v, variables, data)) for k, v in value.items()))
    if isinstance(value, list):
        sources: frozenset[str] = frozenset()
        for item in value:
            sources |= flatten(shape_of(item, variables, data))
        return Data(sources)
    return Data()


def expression_shape(text: str, variables: dict[str, Shape], data: Shape) -> Shape:
    """The shape of bare jq (``input.from``/``output.as``/``export.as`` given as strings)."""
    match = re.fullmatch(r"\s*\$\{(.+)\}\s*", text, re.DOTALL)
    return _expression(_lex(match.group(1) if match else text), variables, data)


def _expression(tokens: list[_Tok], variables: dict[str, Shape], data: Shape) -> Shape:
    """Structure where it is plain (a path, an object construction, ``A + {...}``), else
    :class:`Data` from every reference."""
    parser = _Parser(tokens)
    if tokens and tokens[0].kind in ("field", "dot", "var"):
        reference, end = parser.path(0)
        if reference is not None and end == len(tokens):
            return _lookup(reference, variables, data)
    plus = _top_level(tokens, "+")
    if plus is not None and tokens[plus + 1 :] and tokens[plus + 1].text == "{":
        left = _expression(tokens[:plus], variables, data)
        right = _expression(tokens[plus + 1 :], variables, data)
        if isinstance(right, Obj) and right.rest is None:
            if isinstance(left, Obj):
                kept = tuple((k, v) for k, v in left.entries if right.get(k) is None)
                return Obj(kept + right.entries, left.rest)
            return Obj(right.entries, left)
    if tokens and tokens[0].text == "{" and _closing(tokens, 0) == len(tokens) - 1:
        built = _object(tokens[1:-1], variables, data)
        if built is not None:
            return built
    sources: frozenset[str] = frozenset()
    for reference in parser.references():
        sources |= flatten(_lookup(reference, variables, data))
    return Data(sources)


def _lookup(reference: Reference, variables: dict[str, Shape], data: Shape) -> Shape:
    if reference.base == ".":
        return resolve(data, reference.path)
    name = reference.base[1:]
    if name == "secrets":
        return Data(frozenset({"$secrets" + field_name(reference.path[:1]).removesuffix(".")}))
    known = variables.get(name)
    return Data() if known is None else resolve(known, reference.path)


def _object(tokens: list[_Tok], variables: dict[str, Shape], data: Shape) -> Obj | None:
    """``k: v, ...`` (names, strings, shorthand) as an :class:`Obj`; None if it is not plain."""
    entries: list[tuple[str, Shape]] = []
    for part in _split(tokens, ","):
        if not part:
            return None
        key = part[0]
        if key.kind not in ("ident", "str") or (key.kind == "str" and key.inner):
            return None
        name = key.value if key.kind == "str" else key.text
        if len(part) == 1:  # {from}: shorthand for {from: .from}
            entries.append((name, resolve(data, (name,))))
        elif part[1].text == ":" and len(part) > 2:
            entries.append((name, _expression(part[2:], variables, data)))
        else:
            return None
    return Obj(tuple(entries))


def _split(tokens: list[_Tok], separator: str) -> list[list[_Tok]]:
    parts: list[list[_Tok]] = [[]]
    depth = 0
    for tok in tokens:
        if tok.text in ("{", "(", "["):
            depth += 1
        elif tok.text in ("}", ")", "]"):
            depth -= 1
        if tok.text == separator and depth == 0:
            parts.append([])
        else:
            parts[-1].append(tok)
    return parts


def _top_level(tokens: list[_Tok], operator: str) -> int | None:
    """The index of the one top-level ``operator`` (None: none, more than one, or a pipe)."""
    found: list[int] = []
    depth = 0
    for index, tok in enumerate(tokens):
        if tok.text in ("{", "(", "["):
            depth += 1
        elif tok.text in ("}", ")", "]"):
            depth -= 1
        elif depth == 0 and tok.text in ("|", ",", "//", "as", "and", "or", "if", "reduce"):
            return None
        elif depth == 0 and tok.text == operator:
            found.append(index)
    return found[0] if len(found) == 1 else None


def _closing(tokens: list[_Tok], start: int) -> int:
    depth = 0
    for index in range(start, len(tokens)):
        if tokens[index].text in ("{", "(", "["):
            depth += 1
        elif tokens[index].text in ("}", ")", "]"):
            depth -= 1
            if depth == 0:
                return index
    return -1
