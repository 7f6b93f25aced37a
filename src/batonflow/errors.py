"""Every error batonflow raises, in one tree.

    BatonflowError                  base; ``retryable`` says whether trying again may help
    ├── ConfigError                 bad configuration or arguments (a user's mistake)
    │   ├── WorkflowNotFound        a workflow name or module reference that does not resolve
    │   └── SerializationError      a value that cannot be stored as JSON
    ├── RunNotFound                 no run with that id
    ├── InvalidTransition           a status change the run-status table does not allow
    ├── IdempotencyConflict         an idempotency key reused for a different workflow or input
    ├── NonDeterminismError         the workflow code no longer matches the run's journal
    ├── StoreError                  the database failed (retryable)
    │   ├── LeaseLost               this engine no longer owns the run (retryable)
    │   └── EngineLocked            another engine process holds the embedded database
    ├── StepTimeout                 one attempt of a step ran past its timeout (retryable)
    ├── RunTimeout                  the whole run ran past its deadline
    ├── DeadlineExceeded            a wait inside a ``ctx.deadline`` scope outlived it
    ├── EventTimeout                no event arrived before the wait's timeout
    ├── RunCancelled                the run was cancelled
    ├── RunFailed                   awaiting a run whose workflow raised; carries the recorded error
    │   └── ChildWorkflowFailed     a child run ended without a result
    ├── RecordedError               a replayed step error whose original class cannot be rebuilt
    ├── ConnectorDisabled           a connector or provider is switched off: the step waits
    ├── EgressDenied                an outbound call to a host the egress policy does not allow
    ├── AccessDenied                an identity without the role or token for the action
    └── ApprovalRefused             a decision the approval's rules do not accept

Errors raised by user code keep their own class: a step that raised ``KeyError`` raises
``KeyError`` again when the run is replayed after a crash.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AccessDenied",
    "ApprovalRefused",
    "BatonflowError",
    "ChildWorkflowFailed",
    "ConfigError",
    "ConnectorDisabled",
    "DeadlineExceeded",
    "EgressDenied",
    "EngineLocked",
    "EventTimeout",
    "IdempotencyConflict",
    "InvalidTransition",
    "LeaseLost",
    "NonDeterminismError",
    "RecordedError",
    "RunCancelled",
    "RunFailed",
    "RunNotFound",
    "RunTimeout",
    "SerializationError",
    "StepTimeout",
    "StoreError",
    "WorkflowNotFound",
]


class BatonflowError(Exception):
    """Base of every batonflow error."""

    retryable: ClassVar[bool] = False


class ConfigError(BatonflowError):
    """Configuration or arguments that cannot work; fix the input and try again."""


class WorkflowNotFound(ConfigError):
    """A workflow name or ``module:function`` reference that does not resolve."""


class SerializationError(ConfigError):
    """A value that cannot be recorded as JSON."""


class RunNotFound(BatonflowError):
    """No run has that id."""


class InvalidTransition(BatonflowError):
    """A run-status change that the status table does not allow."""


class IdempotencyConflict(BatonflowError):
    """An idempotency key already names a run of another workflow or with another input."""


class NonDeterminismError(BatonflowError):
    """The workflow code no longer issues the steps its journal recorded."""


class StoreError(BatonflowError):
    """The database failed; the operation may succeed if tried again."""

    retryable = True


class LeaseLost(StoreError):
    """This engine no longer owns the run (cancelled, suspended, or taken over)."""


class EngineLocked(StoreError):
    """Another engine process is executing runs on this embedded database."""

    retryable = False


class StepTimeout(BatonflowError):
    """One attempt of a step ran past its timeout."""

    retryable = True


class RunTimeout(BatonflowError):
    """The run ran past its deadline."""


class DeadlineExceeded(BatonflowError):
    """A wait inside a ``ctx.deadline(...)`` scope was still unfinished at its deadline."""


class EventTimeout(BatonflowError):
    """No matching event arrived before the wait timed out."""


class RunCancelled(BatonflowError):
    """The run was cancelled."""


class RunFailed(BatonflowError):
    """The awaited run faulted; ``error`` is its recorded error."""

    def __init__(self, message: str, error: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.error: dict[str, Any] = error or {}


class ChildWorkflowFailed(RunFailed):
    """A child run faulted or was cancelled."""


class RecordedError(BatonflowError):
    """A recorded error whose original class could not be rebuilt on replay.

    ``type_name`` is the original ``module:QualName``.
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name


class ConnectorDisabled(BatonflowError):
    """A connector or model provider is switched off (``batonflow connector disable``).

    A step that raises it does not fail and does not use up a retry: the run parks and tries the
    step again ``retry_after`` seconds later, until the connector is enabled again.
    """

    def __init__(self, connector: str, retry_after: float = 15.0) -> None:
        super().__init__(
            f"connector {connector!r} is disabled; the run waits until "
            f"`batonflow connector enable {connector}`"
        )
        self.connector = connector
        self.retry_after = retry_after


class EgressDenied(BatonflowError):
    """The egress policy refused an outbound call (host not allow-listed, private address)."""


class AccessDenied(BatonflowError):
    """The identity is unknown, its token is revoked, or it lacks the role for the action."""


class ApprovalRefused(BatonflowError):
    """A decision the approval's rules refuse (not an approver, self-approval, counted twice,
    already decided, a comment required)."""
