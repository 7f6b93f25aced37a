"""The one table from errors to exit codes. Every command exits through it.

The most specific class wins: an error's class and then its bases (its MRO) are looked up in
:data:`EXIT_CODES`, so ``EngineLocked`` gets its own code although it is a ``StoreError``.
Classes of modules the CLI does not load itself (the model providers pull in their SDKs) are
in the same table by name, ``"module:qualname"``: an error of theirs can only exist once
something else imported them.
"""

from __future__ import annotations

import enum

import batonflow as bf


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


#: error class (or its "module:qualname") -> exit code. Subclasses not listed inherit their
#: base's code.
EXIT_CODES: dict[type[BaseException] | str, ExitCode] = {
    bf.ConfigError: ExitCode.USAGE,  # also WorkflowNotFound, SerializationError
    bf.RunNotFound: ExitCode.NOT_FOUND,
    bf.RunFailed: ExitCode.RUN_FAULTED,  # also ChildWorkflowFailed
    bf.RunTimeout: ExitCode.RUN_FAULTED,
    bf.NonDeterminismError: ExitCode.RUN_FAULTED,
    bf.InvalidTransition: ExitCode.INVALID_TRANSITION,
    bf.EngineLocked: ExitCode.ENGINE_LOCKED,
    bf.StoreError: ExitCode.STORE_ERROR,  # also LeaseLost
    OSError: ExitCode.STORE_ERROR,  # the database file or its directory cannot be used
    bf.IdempotencyConflict: ExitCode.CONFLICT,
    bf.RunCancelled: ExitCode.RUN_CANCELLED,
    bf.AccessDenied: ExitCode.FORBIDDEN,
    bf.ApprovalRefused: ExitCode.FORBIDDEN,
    bf.EgressDenied: ExitCode.FORBIDDEN,
    KeyboardInterrupt: ExitCode.INTERRUPTED,
    # A provider error reaches the CLI when importing the user's workflow module calls a model
    # (a run's own model calls fault the run: RUN_FAULTED). A wrong key, request or model
    # set-up is the user's to fix; an outage, a rate limit or a timeout may pass.
    "batonflow.providers._errors:ProviderError": ExitCode.PROVIDER_FAILED,
    "batonflow.providers._errors:ProviderAuthError": ExitCode.USAGE,
    "batonflow.providers._errors:BadRequest": ExitCode.USAGE,
    "batonflow.providers._local:LocalModelMissing": ExitCode.USAGE,
    "batonflow.providers._local:LocalModelCannot": ExitCode.USAGE,
}


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code for ``exc``: its nearest class in the table, else INTERNAL."""
    for cls in type(exc).__mro__:
        code = EXIT_CODES.get(cls) or EXIT_CODES.get(f"{cls.__module__}:{cls.__qualname__}")
        if code is not None:
            return code
    return ExitCode.INTERNAL
