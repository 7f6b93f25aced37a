"""One verdict: what ``validate`` checks that the runtime would otherwise find only when a run
reaches it. Every runtime expression in the document is compiled exactly as the runtime compiles
it (a syntax error, an unknown function, an expression over the size limits); the literal
durations are read by the runtime's own parser (``_durations.to_seconds``) in the typed model.

Which strings are expressions: every strict-mode ``${ ... }`` string in the document except
inside ``document`` (the header), any ``metadata`` and any ``schema`` (data, never evaluated);
and the bare jq of the fields whose type *is* an expression (``if``, ``when``, ``while``,
``exceptWhen``, ``for.in``, ``input.from``, ``output.as``, ``export.as``).

Which variables an expression may read: the runtime expression arguments (dsl.md "Runtime
expression arguments": ``$context``, ``$input``, ...), a ``for`` task's ``each``/``at`` variables
in its ``while`` and ``do`` (not in ``for.in``, evaluated before the loop), a subscription
iterator's ``item``/``at`` throughout its ``foreach``, and a ``try`` task's ``catch.as`` variable
inside its ``catch``; jq's own bindings (``. as $x``, ``def f($a)``) are
jq's. Any other ``$name`` is a compile error at run time, so it is one here, with its path.

Which arguments, where: exactly those the interpreter binds, which are dsl.md's table ("The
following table shows which arguments are available for each runtime expression") less
``$authorization``, which batonflow does not bind yet: a task's ``if`` and ``input.from`` (and a
listen's ``until`` condition) see no ``$input``; only ``export.as`` sees ``$output``; the
workflow's ``input.from`` sees no ``$context``; its ``output.as`` no ``$task`` or ``$input``.
An event filter's ``with`` attributes and ``correlate.from`` see no variable at all (``.`` is
the event). Elsewhere (``use``, ``schedule``) every argument but ``$authorization`` stays
accepted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Final, Literal

from batonflow.dsl._expr import STANDARD_ARGUMENTS, check, is_expression
from batonflow.dsl._model.errors import Finding
from batonflow.dsl._yaml import join_pointer

__all__ = ["expression_findings"]

_NOT_EVALUATED = frozenset({"metadata", "schema"})
_CONDITIONS = frozenset({"if", "when", "while", "exceptWhen"})
_DATA = frozenset({"with", "event", "body", "headers", "query", "arguments", "set"})
_BARE = {"for": "in", "input": "from", "output": "as", "export": "as"}
#: the fields that hold a task list (``- name: task`` entries)
_TASK_LISTS = frozenset({"do", "try", "branches"})

#: the runtime expression arguments the interpreter binds at each place (see the module doc)
WORKFLOW_INPUT: Final = frozenset({"secrets", "workflow", "runtime"})
WORKFLOW_OUTPUT: Final = WORKFLOW_INPUT | {"context"}
TASK_BEFORE: Final = WORKFLOW_OUTPUT | {"task"}
TASK: Final = TASK_BEFORE | {"input"}
TASK_EXPORT: Final = TASK | {"output"}
ELSEWHERE: Final = STANDARD_ARGUMENTS - {"authorization"}
_WORKFLOW_FIELDS = {"input": WORKFLOW_INPUT, "output": WORKFLOW_OUTPUT, "do": TASK}
_TASK_FIELDS = {"if": TASK_BEFORE, "input": TASK_BEFORE, "export": TASK_EXPORT}
_UNDEFINED = re.compile(r"\$(\w+) is not defined")

#: an event consumption strategy's filters: ``one``'s, and the items of ``any``/``all``
_FILTER_LISTS = frozenset({"any", "all"})

Role = Literal["", "entries", "task", "filter"]


def expression_findings(document: dict[str, Any]) -> list[Finding]:
    """A finding for every expression in ``document`` that does not compile, or that reads a
    variable not in scope where it is."""
    findings = []
    for pointer, text, scope in _expressions(document):
        problem = check(text, scope)
        if problem is not None:
            message = problem.detail or "invalid runtime expression"
            undefined = _UNDEFINED.search(message)
            if undefined is not None:
                if undefined.group(1) == "authorization":
                    message += (
                        "\n($authorization is not available: batonflow does not bind the "
                        "resolved authorization of a call yet)"
                    )
                shown = ", ".join(f"${name}" for name in sorted(scope))
                if shown:
                    message += f"\n(the variables in scope here: {shown})"
                else:
                    message += "\n(no variables are in scope here: it sees only the event)"
            findings.append(Finding(pointer, message, "expression", text[:80]))
    return findings


#: (pointer, expression, every variable it may read there: arguments and task variables)
Found = Iterator[tuple[str, str, frozenset[str]]]


def _expressions(document: dict[str, Any]) -> Found:
    for key, value in document.items():
        if key != "document" and key not in _NOT_EVALUATED:
            arguments = _WORKFLOW_FIELDS.get(key, ELSEWHERE)
            role: Role = "entries" if key == "do" else ""
            here = join_pointer("", key)
            yield from _walk(value, here, key, key not in _DATA, arguments, frozenset(), role)


def _walk(
    value: Any,
    pointer: str,
    key: str | int | None,
    typed: bool,
    arguments: frozenset[str],
    scope: frozenset[str],
    role: Role,
) -> Found:
    """``typed``: outside data (call arguments, event attributes), where a field's name says
    whether it is an expression. ``arguments``: the runtime expression arguments bound here;
    ``scope``: the task variables. ``role``: ``entries`` for a task list and its items,
    ``task`` for a task (whose fields decide the arguments)."""
    if isinstance(value, str):
        if is_expression(value) or (typed and key in _CONDITIONS and value.strip()):
            if typed and key == "until":  # a listen's until condition: no $input
                arguments = arguments - {"input"}
            yield pointer, value, arguments | scope
    elif isinstance(value, dict) and role == "filter":
        yield from _filter(value, pointer, arguments, scope)
    elif isinstance(value, dict):
        bare = _BARE.get(key) if typed and isinstance(key, str) else None
        inner = _task_variables(value) if typed else {}
        for name, item in value.items():
            if name in _NOT_EVALUATED:
                continue
            here = join_pointer(pointer, name)
            seen = scope | inner.get(name, frozenset()) | _iterator_variables(name, item)
            bound = _TASK_FIELDS.get(name, TASK) if role == "task" else arguments
            if name == bare and isinstance(item, str) and item.strip():
                yield here, item, bound | seen
                continue
            inside: Role = ""
            if typed and role == "entries":
                inside = "task"
            elif typed and name in _TASK_LISTS:
                inside = "entries"
            elif typed and name == "one":
                inside = "filter"
            yield from _walk(item, here, name, typed and name not in _DATA, bound, seen, inside)
    elif isinstance(value, list):
        entries: Role = "entries" if role == "entries" else ""
        if typed and key in _FILTER_LISTS:
            entries = "filter"
        for index, item in enumerate(value):
            here = join_pointer(pointer, index)
            yield from _walk(item, here, index, typed, arguments, scope, entries)


def _filter(
    value: dict[str, Any], pointer: str, arguments: frozenset[str], scope: frozenset[str]
) -> Found:
    """An event filter: the expressions of its ``with`` attributes and of ``correlate``'s
    ``from`` are tried on each event with no argument or variable at all (``.`` is the event or
    its attribute), and a failure skips the event silently, so one that reads a ``$name`` could
    never match; ``correlate``'s ``expect`` is evaluated where the listen runs."""
    for name, item in value.items():
        here = join_pointer(pointer, name)
        if name == "with" and isinstance(item, dict):
            for attribute, wanted in item.items():
                if isinstance(wanted, str) and is_expression(wanted):
                    yield join_pointer(here, attribute), wanted, frozenset()
        elif name == "correlate" and isinstance(item, dict):
            for correlation, spec in item.items():
                if not isinstance(spec, dict):
                    continue
                for field, part in spec.items():
                    where = join_pointer(join_pointer(here, correlation), field)
                    if field == "from" and isinstance(part, str) and is_expression(part):
                        yield where, part, frozenset()
                    else:
                        yield from _walk(part, where, field, False, arguments, scope, "")
        else:
            yield from _walk(item, here, name, name not in _DATA, arguments, scope, "")


def _iterator_variables(name: str, value: Any) -> frozenset[str]:
    """A subscription iterator's item and index (``listen``'s ``foreach``, and an AsyncAPI
    call's ``subscription.foreach``), in scope throughout it."""
    if name != "foreach" or not isinstance(value, dict):
        return frozenset()
    names = (value.get("item", "item"), value.get("at", "index"))
    return frozenset(n for n in names if isinstance(n, str))


def _task_variables(task: dict[str, Any]) -> dict[str, frozenset[str]]:
    """The variables a task defines, by the field where they are in scope: a ``for`` task's
    item and index in ``while`` and ``do``, a ``try`` task's caught error in ``catch``."""
    loop, catch = task.get("for"), task.get("catch")
    if isinstance(loop, dict) and "in" in loop:
        names = frozenset(
            name
            for name in (loop.get("each", "item"), loop.get("at", "index"))
            if isinstance(name, str)
        )
        return {"while": names, "do": names}
    if "try" in task and isinstance(catch, dict):
        name = catch.get("as", "error")
        return {"catch": frozenset({name})} if isinstance(name, str) else {}
    return {}
