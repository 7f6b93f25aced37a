"""A run's error as an RFC 9457 problem document: one shape for every run, DSL or Python.

    >>> problem_of(run)            # a faulted or cancelled run (None when it has no error)
    {"type": "https://serverlessworkflow.io/spec/1.0.0/errors/communication", "status": 503,
     "title": "CRM unavailable", "detail": "...", "instance": "/do/1/logInCrm",
     "class": "batonflow.dsl._problems:WorkflowError", "step": "4", "retryable": false, ...}

A workflow document's error is its own problem (the ``type``, ``status``, ``title``, ``detail``
and ``instance`` the workflow raised or the runtime reported). Any other error gets a type URI
derived from its class (``urn:batonflow:error:builtins.ConnectionError``), a status from
:data:`STATUS` (the nearest class of the error's MRO), its class's one-line summary as the
title and its message as the detail. The implementation class is a separate member
(``class``), next to the extension members ``step`` (the position of the step that failed),
``retryable``, ``cause`` (a failed child run's problem) and ``traceback``.

The CLI's ``--json`` documents, ``show``, and the HTTP API all report run errors through
:func:`problem_of`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, overload

from batonflow import errors
from batonflow._serde import _resolve_exception_class, error_to_dict
from batonflow.store import RunRecord

__all__ = ["ERROR_TYPE_PREFIX", "STATUS", "problem_of", "status_of"]

#: The type URI of a non-DSL error is this prefix and the class's ``module.QualName``.
ERROR_TYPE_PREFIX = "urn:batonflow:error:"

#: error class (or its ``"module:qualname"``) -> the status of a run that ended with it. The
#: nearest class of the error's MRO wins; anything not listed is 500. The HTTP API answers
#: with these too.
STATUS: dict[type[BaseException] | str, int] = {
    errors.ConfigError: 400,
    errors.WorkflowNotFound: 404,
    errors.RunNotFound: 404,
    errors.InvalidTransition: 409,
    errors.IdempotencyConflict: 409,
    errors.NonDeterminismError: 409,
    errors.StoreError: 503,
    errors.LeaseLost: 409,
    errors.EngineLocked: 423,
    errors.StepTimeout: 504,
    errors.RunTimeout: 504,
    errors.DeadlineExceeded: 504,
    errors.EventTimeout: 408,
    errors.RunCancelled: 409,
    errors.ChildWorkflowFailed: 502,
    errors.ConnectorDisabled: 503,
    errors.EgressDenied: 403,
    errors.AccessDenied: 403,
    errors.ApprovalRefused: 403,
    TimeoutError: 504,
    ConnectionError: 502,
    PermissionError: 403,
    "httpx:TimeoutException": 504,
    "httpx:TransportError": 502,
    "batonflow.providers._errors:ProviderError": 502,
}

#: The packages whose error classes are looked up to describe an error (see _known_class).
_DESCRIBED = frozenset({"batonflow", "httpx"})

#: What a payload erased with its data subject opens to (see governance ``SealedStore``).
_ERASED = "$erased"


def status_of(error: type[BaseException] | str) -> int:
    """The status for an error class, or a recorded ``module:QualName`` (500 if unknown)."""
    cls = _known_class(error) if isinstance(error, str) else error
    if cls is None:
        return 500
    for base in cls.__mro__:
        found = STATUS.get(base) or STATUS.get(f"{base.__module__}:{base.__qualname__}")
        if found is not None:
            return found
    return 500


@overload
def problem_of(run_or_error: RunRecord) -> dict[str, Any] | None: ...
@overload
def problem_of(run_or_error: BaseException | Mapping[str, Any]) -> dict[str, Any]: ...
def problem_of(
    run_or_error: RunRecord | BaseException | Mapping[str, Any],
) -> dict[str, Any] | None:
    """The RFC 9457 problem of a run's error (None if the run has none), of an exception (for
    the ``RunFailed`` that awaiting a faulted run raises: that run's problem), or of a
    recorded error (the JSON object a run's ``error_json`` holds)."""
    if isinstance(run_or_error, RunRecord):
        if run_or_error.error_json is None:
            return None
        try:
            recorded = json.loads(run_or_error.error_json)
        except ValueError:
            recorded = {"message": run_or_error.error_json}
        return _from_record(recorded if isinstance(recorded, dict) else {"message": recorded})
    if type(run_or_error) is errors.RunFailed and run_or_error.error:
        return _from_record(run_or_error.error)  # awaiting a run that faulted: its problem
    if isinstance(run_or_error, BaseException):
        return _from_record(error_to_dict(run_or_error))
    return _from_record(run_or_error)


def _from_record(recorded: Mapping[str, Any]) -> dict[str, Any]:
    if recorded.get(_ERASED):
        return {
            "type": f"{ERROR_TYPE_PREFIX}erased",
            "status": 410,
            "title": "Erased",
            "detail": "the error was erased with the data of the run's subjects",
        }
    name = str(recorded.get("type") or "builtins:Exception")
    message = str(recorded.get("message") or "")
    state = recorded.get("state")
    problem: dict[str, Any]
    if isinstance(state, Mapping) and "type" in state and "status" in state:
        problem = {"type": str(state["type"]), "status": _int(state["status"])}
        for key in ("title", "detail", "instance"):
            if state.get(key) is not None:
                problem[key] = state[key]
    else:
        problem = {
            "type": ERROR_TYPE_PREFIX + name.replace(":", "."),
            "status": status_of(name),
            "title": _title(name),
            "detail": message,
        }
    problem["class"] = name
    for key in ("step", "retryable", "traceback"):
        if key in recorded:
            problem[key] = recorded[key]
    cause = recorded.get("cause")
    if isinstance(cause, Mapping) and cause:
        problem["cause"] = _from_record(cause)
    return problem


def _title(name: str) -> str:
    """The class's summary (its docstring's first paragraph on one line), else its name.
    Python's own classes go by name: their docstrings ("Inappropriate argument value (of
    correct type).") say less to a reader than ``ValueError``."""
    if name.startswith("builtins:"):
        return name.partition(":")[2]
    cls = _known_class(name)
    doc = (cls.__doc__ or "") if cls is not None else ""
    summary = " ".join(doc.strip().split("\n\n")[0].split()).replace("``", "")
    return summary or name.rpartition(":")[2] or name


def _known_class(name: str) -> type[BaseException] | None:
    """The class a recorded name names, if it is Python's, batonflow's or httpx's: a user's
    module is never imported to describe its error (that would run its code, and the answer
    would depend on what the process happened to load)."""
    module = name.partition(":")[0]
    if module != "builtins" and module.split(".")[0] not in _DESCRIBED:
        return None
    return _resolve_exception_class(name)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 500
