"""The one table from errors to exit codes. Every command exits through it.

The most specific class wins: an error's class and then its bases (its MRO) are looked up in
:data:`EXIT_CODES`, so ``EngineLocked`` gets its own code although it is a ``StoreError``.
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
    INTERRUPTED = 130  # Ctrl-C


#: error class -> exit code. Subclasses not listed inherit their base's code.
EXIT_CODES: dict[type[BaseException], ExitCode] = {
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
    KeyboardInterrupt: ExitCode.INTERRUPTED,
}


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code for ``exc``: its nearest class in the table, else INTERNAL."""
    for cls in type(exc).__mro__:
        code = EXIT_CODES.get(cls)
        if code is not None:
            return code
    return ExitCode.INTERNAL
