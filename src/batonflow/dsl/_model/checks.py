"""Rules the JSON Schema cannot express but the DSL requires, checked on a valid model.

* ``then`` (of a task, a switch case, or a catch) names ``continue``, ``exit``, ``end``, or a
  task of the same task list ("flow directives may only redirect to tasks declared within
  their own scope").
* A string where the DSL takes a definition or a name must name a reusable component:
  ``timeout`` -> ``use.timeouts``, ``raise.error`` -> ``use.errors``, ``catch.retry`` ->
  ``use.retries``, ``authentication.use`` -> ``use.authentications``; and the catalog of a
  ``name:version@catalog`` call -> ``use.catalogs`` (or ``default``, the runtime's own).
* A function call named like a built-in call type (``htttp``, ``HTTP``, ``grcp``) that no
  ``use.functions`` entry defines is a typo. Other bare function names are not checked: the
  runtime may provide them.

Also the warnings: top-level keys the DSL does not define, and a DSL major version other
than 1.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from batonflow.dsl._model.auth import AuthenticationReference
from batonflow.dsl._model.base import FlowDirective, NamedList, TaskList, is_flow_directive
from batonflow.dsl._model.calls import BUILTIN_CALLS, CallFunction
from batonflow.dsl._model.common import TaskBase
from batonflow.dsl._model.errors import Finding
from batonflow.dsl._model.tasks import Catch as CatchConfig
from batonflow.dsl._model.tasks import RaiseConfig, SwitchTask, TryTask
from batonflow.dsl._model.workflow import Use, Workflow
from batonflow.dsl._yaml import join_pointer

__all__ = ["check", "warnings"]


def check(workflow: Workflow) -> list[Finding]:
    """Every breach of the rules above."""
    findings = list(_flow_targets(workflow))
    findings.extend(_references(workflow))
    return findings


def warnings(workflow: Workflow) -> list[Finding]:
    found = []
    known = set(Workflow.document_keys())
    for key in workflow.model_extra or {}:
        guess = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.7)
        hint = f"; did you mean '{guess[0]}'?" if guess else ""
        message = f"property '{key}' is not part of the DSL and is ignored{hint}"
        found.append(Finding(join_pointer("", key), message, "unknown-key", key, on_key=True))
    if not workflow.document.dsl.startswith("1."):
        message = f"DSL version '{workflow.document.dsl}': this runtime implements DSL 1.0"
        found.append(Finding("/document/dsl", message, "dsl-version", workflow.document.dsl))
    return found


# -- flow directives ------------------------------------------------------------------------------


def _flow_targets(workflow: Workflow) -> Iterator[Finding]:
    for pointer, tasks in workflow.task_lists():
        for index, (name, task) in enumerate(tasks):
            here = join_pointer(pointer, index, name)
            for where, target in _targets(task, here):
                if not is_flow_directive(target) and tasks.index_of(target) is None:
                    yield _bad_target(where, target, tasks)


def _targets(task: TaskBase, pointer: str) -> Iterator[tuple[str, str]]:
    if task.then is not None:
        yield pointer + "/then", task.then
    if isinstance(task, SwitchTask):
        for index, (name, case) in enumerate(task.switch):
            yield join_pointer(pointer, "switch", index, name, "then"), case.then
    if isinstance(task, TryTask) and task.catch.then is not None:
        yield pointer + "/catch/then", task.catch.then


def _bad_target(pointer: str, target: str, tasks: TaskList) -> Finding:
    names = tasks.names()
    directives = ", ".join(d.value for d in FlowDirective)
    expected = f"{directives}, or a task of the same list: {', '.join(names)}"
    message = f"no task named '{target}' in this task list; expected {expected}"
    guess = difflib.get_close_matches(target, names, n=1, cutoff=0.6)
    if guess:
        message += f" (did you mean '{guess[0]}'?)"
    return Finding(pointer, message, "flow", target, expected)


# -- references -----------------------------------------------------------------------------------


def _references(workflow: Workflow) -> Iterator[Finding]:
    use = workflow.use or Use()
    for pointer, node in _nodes(workflow, ""):
        finding = _reference(node, pointer, use)
        if finding is not None:
            yield finding


def _reference(node: Any, pointer: str, use: Use) -> Finding | None:
    if isinstance(node, TaskBase | Workflow) and isinstance(node.timeout, str):
        return _named(node.timeout, use.timeouts, "timeout", pointer + "/timeout")
    if isinstance(node, RaiseConfig) and isinstance(node.error, str):
        return _named(node.error, use.errors, "error", pointer + "/error")
    if isinstance(node, CatchConfig) and isinstance(node.retry, str):
        return _named(node.retry, use.retries, "retry policy", pointer + "/retry")
    if isinstance(node, AuthenticationReference):
        return _named(node.use, use.authentications, "authentication policy", pointer + "/use")
    if isinstance(node, CallFunction):
        return _function(node, pointer + "/call", use)
    return None


_SECTIONS = {
    "timeout": "use.timeouts",
    "error": "use.errors",
    "retry policy": "use.retries",
    "authentication policy": "use.authentications",
    "catalog": "use.catalogs",
}


def _named(name: str, defined: dict[str, Any] | None, what: str, pointer: str) -> Finding | None:
    names = sorted(defined or {})
    if name in names:
        return None
    section = _SECTIONS[what]
    known = f"defined: {', '.join(names)}" if names else f"{section} defines none"
    message = f"unknown {what} '{name}'; expected the name of one in {section} ({known})"
    return Finding(pointer, message, "reference", name, f"a name in {section}")


def _function(call: CallFunction, pointer: str, use: Use) -> Finding | None:
    name = call.call
    if name in (use.functions or {}):
        return None
    reference = call.catalog_reference
    if reference is not None:
        catalog = reference[2]
        if catalog == "default" or catalog in (use.catalogs or {}):
            return None
        return _named(catalog, use.catalogs, "catalog", pointer)
    builtin = _builtin_lookalike(name)
    if builtin is None:
        return None
    expected = ", ".join(BUILTIN_CALLS) + ", or a function name"
    message = f"unknown call '{name}'; expected one of {expected} (did you mean '{builtin}'?)"
    return Finding(pointer, message, "call", name, expected)


def _builtin_lookalike(name: str) -> str | None:
    """The built-in call type ``name`` is a slip of, if any: the same in another case, or (for
    names longer than three letters) one letter added, dropped, changed or swapped."""
    lowered = name.lower()
    for builtin in BUILTIN_CALLS:
        if lowered == builtin:
            return builtin
        if len(builtin) > 3 and _edit_distance(lowered, builtin) <= 1:
            return builtin
    return None


def _edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance (Levenshtein plus adjacent swaps)."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cost = min(cost, previous2[j - 2] + 1)
            current.append(cost)
        previous2, previous = previous, current
    return previous[-1]


def _nodes(value: Any, pointer: str) -> Iterator[tuple[str, Any]]:
    """Every model, list and value in the document as written, with its pointer."""
    yield pointer, value
    if isinstance(value, BaseModel):
        for name, info in type(value).model_fields.items():
            if name in value.model_fields_set:
                child = join_pointer(pointer, info.alias or name)
                yield from _nodes(getattr(value, name), child)
    elif isinstance(value, NamedList):
        for index, (name, item) in enumerate(value):
            yield from _nodes(item, join_pointer(pointer, index, name))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _nodes(item, join_pointer(pointer, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nodes(item, join_pointer(pointer, index))
