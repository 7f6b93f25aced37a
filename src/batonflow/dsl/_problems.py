"""Workflow errors as RFC 7807 problem details, with the DSL's standard error types.

The specification, its conformance kit and the renamed specification spell the standard types
three ways; all three name the same type here, so a ``catch`` written against any spelling
matches an error raised with any other.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from batonflow.errors import BatonflowError

_SPELLINGS = (
    "https://serverlessworkflow.io/spec/1.0.0/errors/{}",  # the 1.0.x specification
    "https://serverlessworkflow.io/dsl/errors/types/{}",  # the conformance test kit
    "https://open-workflow-specification.org/spec/1.0.0/errors/{}",  # the renamed specification
)


class ErrorType(enum.StrEnum):
    """The standard error kinds and their default status codes."""

    CONFIGURATION = "configuration"
    VALIDATION = "validation"
    EXPRESSION = "expression"
    AUTHENTICATION = "authentication"
    AUTHORIZATION = "authorization"
    TIMEOUT = "timeout"
    COMMUNICATION = "communication"
    RUNTIME = "runtime"

    @property
    def uri(self) -> str:
        """The canonical URI (the specification's spelling)."""
        return _SPELLINGS[0].format(self.value)

    @property
    def status(self) -> int:
        return _DEFAULT_STATUS[self]


_DEFAULT_STATUS = {
    ErrorType.CONFIGURATION: 400,
    ErrorType.VALIDATION: 400,
    ErrorType.EXPRESSION: 400,
    ErrorType.AUTHENTICATION: 401,
    ErrorType.AUTHORIZATION: 403,
    ErrorType.TIMEOUT: 408,
    ErrorType.COMMUNICATION: 500,
    ErrorType.RUNTIME: 500,
}

_ALIASES: dict[str, str] = {
    spelling.format(kind.value): kind.uri for kind in ErrorType for spelling in _SPELLINGS
}


def canonical_type(uri: str) -> str:
    """The one spelling of a standard type; any other URI is returned unchanged."""
    return _ALIASES.get(uri, uri)


@dataclass(frozen=True, slots=True)
class Problem:
    """An RFC 7807 problem: what went wrong, where (``instance``: a JSON pointer into the
    workflow document), and how badly (``status``)."""

    type: str
    status: int
    title: str | None = None
    detail: str | None = None
    instance: str | None = None

    @classmethod
    def of(
        cls,
        kind: ErrorType,
        detail: str | None = None,
        *,
        title: str | None = None,
        status: int | None = None,
        instance: str | None = None,
    ) -> Problem:
        return cls(kind.uri, status or kind.status, title, detail, instance)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Problem:
        return cls(
            type=str(data["type"]),
            status=int(data["status"]),
            title=data.get("title"),
            detail=data.get("detail"),
            instance=data.get("instance"),
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type, "status": self.status}
        for key in ("title", "detail", "instance"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data

    def with_instance(self, instance: str) -> Problem:
        """This problem located at ``instance``, unless it already names a place."""
        if self.instance is not None:
            return self
        return Problem(self.type, self.status, self.title, self.detail, instance)


class WorkflowError(BatonflowError):
    """A DSL workflow error carrying its problem details. Recorded and replayed like any error,
    and rebuilt with the same problem after a crash."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(problem.detail or problem.title or problem.type)

    def record_state(self) -> dict[str, Any]:
        return self.problem.to_dict()

    @classmethod
    def from_record(cls, message: str, state: dict[str, Any]) -> WorkflowError:
        return cls(Problem.from_dict(state))
