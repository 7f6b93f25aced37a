"""The one table from errors to what a caller sees: a CLI exit code and an HTTP status with an
RFC 9457 problem type. ``batonflow`` commands exit through :func:`exit_code_for`; the HTTP API
answers through :func:`problem_for`. Both read :data:`OUTCOMES`.

The most specific class wins: an error's class and then its bases (its MRO) are looked up, so
``EngineLocked`` gets its own row although it is a ``StoreError``. Classes of modules that are
not always loaded (the model providers pull in their SDKs) are in the table by name,
``"module:qualname"``: an error of theirs can only exist once something else imported them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from batonflow import errors as e

__all__ = ["OUTCOMES", "PROBLEM_BASE", "ExitCode", "Outcome", "exit_code_for", "problem_for"]

#: Problem ``type`` URIs are this base plus the row's slug (documented in docs/api.md).
PROBLEM_BASE = "https://batonflow.dev/problems/"


class ExitCode(enum.IntEnum):
    OK = 0  # done; also `run` leaving a run waiting or suspended (see its status)
    INTERNAL = 1  # an unexpected error: a bug in batonflow, please report it
    USAGE = 2  # bad arguments or configuration: fix the command line and try again
    NOT_FOUND = 3  # no run with that id
    RUN_FAULTED = 4  # the run ended faulted (its workflow raised)
    INVALID_TRANSITION = 5  # the run's status does not allow that action
    ENGINE_LOCKED = 6  # another engine (a worker) is executing runs on this database
    STORE_ERROR = 7  # the database (or its file) failed
    CONFLICT = 8  # an idempotency key already names a different run
    RUN_CANCELLED = 9  # the run ended cancelled
    PROVIDER_FAILED = 10  # a model provider failed or could not be reached: try again later
    FORBIDDEN = 11  # refused: no token or role for it, a decision the rules refuse, egress
    AUDIT_BROKEN = 12  # `audit verify`: the trail was changed (the message names where)
    INTERRUPTED = 130  # Ctrl-C


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one class of error means to a shell (``exit``) and to an HTTP client (``status``,
    ``slug``: the problem type, ``title``: its short human summary)."""

    exit: ExitCode
    status: int
    slug: str
    title: str


def _o(exit: ExitCode, status: int, slug: str, title: str) -> Outcome:
    return Outcome(exit, status, slug, title)


#: error class (or its "module:qualname") -> outcome. Subclasses not listed inherit their
#: base's row.
OUTCOMES: dict[type[BaseException] | str, Outcome] = {
    e.ConfigError: _o(ExitCode.USAGE, 400, "invalid-input", "Invalid input"),
    e.WorkflowNotFound: _o(ExitCode.USAGE, 404, "workflow-not-found", "No such workflow"),
    e.RunNotFound: _o(ExitCode.NOT_FOUND, 404, "run-not-found", "No such run"),
    e.RunFailed: _o(ExitCode.RUN_FAULTED, 409, "run-faulted", "The run faulted"),
    e.RunTimeout: _o(ExitCode.RUN_FAULTED, 409, "run-timeout", "The run timed out"),
    e.NonDeterminismError: _o(
        ExitCode.RUN_FAULTED, 409, "non-determinism", "The workflow no longer matches its journal"
    ),
    e.InvalidTransition: _o(
        ExitCode.INVALID_TRANSITION, 409, "invalid-transition", "The run's status does not allow it"
    ),
    e.EngineLocked: _o(
        ExitCode.ENGINE_LOCKED, 503, "engine-locked", "Another engine holds the database"
    ),
    e.StoreError: _o(ExitCode.STORE_ERROR, 503, "store-unavailable", "The database failed"),
    OSError: _o(ExitCode.STORE_ERROR, 503, "store-unavailable", "The database failed"),
    e.IdempotencyConflict: _o(
        ExitCode.CONFLICT, 409, "idempotency-conflict", "The idempotency key names another run"
    ),
    e.RunCancelled: _o(ExitCode.RUN_CANCELLED, 409, "run-cancelled", "The run was cancelled"),
    e.AccessDenied: _o(ExitCode.FORBIDDEN, 403, "forbidden", "Not allowed"),
    "batonflow.server._problems:NotFound": _o(ExitCode.NOT_FOUND, 404, "not-found", "Not found"),
    "batonflow.triggers._describe:TriggerNotFound": _o(
        ExitCode.USAGE, 404, "not-found", "Not found"
    ),
    "batonflow.server._problems:TooLarge": _o(
        ExitCode.USAGE, 413, "too-large", "The request body is too large"
    ),
    "batonflow.server._auth:Unauthenticated": _o(
        ExitCode.FORBIDDEN, 401, "unauthenticated", "A valid bearer token is needed"
    ),
    "batonflow.triggers._webhook:HookNotFound": _o(
        ExitCode.NOT_FOUND, 404, "hook-not-found", "No such webhook"
    ),
    "batonflow.triggers._webhook:HookPaused": _o(
        ExitCode.USAGE, 503, "hook-paused", "The webhook is paused"
    ),
    "batonflow.triggers._webhook:BodyTooLarge": _o(
        ExitCode.USAGE, 413, "too-large", "The request body is too large"
    ),
    "batonflow.triggers._webhook:UnsupportedMedia": _o(
        ExitCode.USAGE, 415, "unsupported-media-type", "Unsupported content type"
    ),
    "batonflow.triggers._webhook:SignatureRefused": _o(
        ExitCode.FORBIDDEN, 401, "signature-refused", "The webhook signature is not valid"
    ),
    "batonflow.triggers._webhook:HookMisconfigured": _o(
        ExitCode.USAGE, 503, "hook-misconfigured", "The webhook cannot check signatures now"
    ),
    "batonflow.triggers._webhook:InputRefused": _o(
        ExitCode.USAGE, 400, "invalid-input", "Invalid input"
    ),
    e.ApprovalRefused: _o(ExitCode.FORBIDDEN, 403, "approval-refused", "Decision refused"),
    e.EgressDenied: _o(ExitCode.FORBIDDEN, 403, "egress-denied", "Outbound call not allowed"),
    KeyboardInterrupt: _o(ExitCode.INTERRUPTED, 503, "interrupted", "Interrupted"),
    # A provider error reaches a caller when importing the user's workflow module calls a model
    # (a run's own model calls fault the run). A wrong key, request or model set-up is the
    # user's to fix; an outage, a rate limit or a timeout may pass.
    "batonflow.providers._errors:ProviderError": _o(
        ExitCode.PROVIDER_FAILED, 502, "provider-failed", "A model provider failed"
    ),
    "batonflow.providers._errors:ProviderAuthError": _o(
        ExitCode.USAGE, 400, "provider-misconfigured", "A model provider is misconfigured"
    ),
    "batonflow.providers._errors:BadRequest": _o(
        ExitCode.USAGE, 400, "provider-misconfigured", "A model provider is misconfigured"
    ),
    "batonflow.providers._local:LocalModelMissing": _o(
        ExitCode.USAGE, 400, "provider-misconfigured", "A model provider is misconfigured"
    ),
    "batonflow.providers._local:LocalModelCannot": _o(
        ExitCode.USAGE, 400, "provider-misconfigured", "A model provider is misconfigured"
    ),
}

_INTERNAL = Outcome(ExitCode.INTERNAL, 500, "internal", "Internal error")


def outcome_for(exc: BaseException) -> Outcome:
    """The row for ``exc``: its nearest class in the table, else an internal error."""
    for cls in type(exc).__mro__:
        row = OUTCOMES.get(cls) or OUTCOMES.get(f"{cls.__module__}:{cls.__qualname__}")
        if row is not None:
            return row
    return _INTERNAL


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code for ``exc``: its nearest class in the table, else INTERNAL."""
    return outcome_for(exc).exit


def problem_for(exc: BaseException, *, instance: str | None = None) -> dict[str, Any]:
    """``exc`` as an RFC 9457 problem document (``retryable`` says whether trying again may
    help; an internal error's detail is not shown, it may hold anything)."""
    row = outcome_for(exc)
    detail = str(exc) if row is not _INTERNAL else "an unexpected error; see the server's log"
    problem: dict[str, Any] = {
        "type": PROBLEM_BASE + row.slug,
        "title": row.title,
        "status": row.status,
        "detail": detail,
        "retryable": bool(getattr(exc, "retryable", False)),
    }
    if instance is not None:
        problem["instance"] = instance
    return problem
