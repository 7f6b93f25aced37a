"""One verdict: what ``validate`` checks that the runtime would otherwise find only when a run
reaches it. Every runtime expression in the document is compiled exactly as the runtime compiles
it (a syntax error, an unknown function, an expression over the size limits); the literal
durations are read by the runtime's own parser (``_durations.to_seconds``) in the typed model.

Which strings are expressions: every strict-mode ``${ ... }`` string in the document except
inside ``document`` (the header), any ``metadata`` and any ``schema`` (data, never evaluated);
and the bare jq of the fields whose type *is* an expression (``if``, ``when``, ``while``,
``exceptWhen``, ``for.in``, ``input.from``, ``output.as``, ``export.as``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from batonflow.dsl._expr import check, is_expression
from batonflow.dsl._model.errors import Finding
from batonflow.dsl._yaml import join_pointer

__all__ = ["expression_findings"]

_NOT_EVALUATED = frozenset({"metadata", "schema"})
_CONDITIONS = frozenset({"if", "when", "while", "exceptWhen"})
_DATA = frozenset({"with", "event", "body", "headers", "query", "arguments", "set"})
_BARE = {"for": "in", "input": "from", "output": "as", "export": "as"}


def expression_findings(document: dict[str, Any]) -> list[Finding]:
    """A finding for every expression in ``document`` that does not compile."""
    findings = []
    for pointer, text in _expressions(document):
        problem = check(text)
        if problem is not None:
            message = problem.detail or "invalid runtime expression"
            findings.append(Finding(pointer, message, "expression", text[:80]))
    return findings


def _expressions(document: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for key, value in document.items():
        if key != "document" and key not in _NOT_EVALUATED:
            yield from _walk(value, join_pointer("", key), key, key not in _DATA)


def _walk(
    value: Any, pointer: str, key: str | int | None, typed: bool
) -> Iterator[tuple[str, str]]:
    """``typed``: outside data (call arguments, event attributes), where a field's name says
    whether it is an expression."""
    if isinstance(value, str):
        if is_expression(value) or (typed and key in _CONDITIONS and value.strip()):
            yield pointer, value
    elif isinstance(value, dict):
        bare = _BARE.get(key) if typed and isinstance(key, str) else None
        for name, item in value.items():
            if name in _NOT_EVALUATED:
                continue
            here = join_pointer(pointer, name)
            if name == bare and isinstance(item, str) and item.strip():
                yield here, item
            else:
                yield from _walk(item, here, name, typed and name not in _DATA)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, join_pointer(pointer, index), index, typed)
