"""Parts shared by the workflow and its tasks: data flow (input, output, export, schemas),
endpoints and external resources, timeouts, errors and error filters, retry policies,
catalogs, extensions, and the base every task type extends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, Tag, model_validator

from batonflow.dsl._model.auth import ReferenceableAuthentication
from batonflow.dsl._model.base import (
    OBJECT,
    STRING,
    TAG,
    Duration,
    Int,
    Model,
    NamedList,
    OpenModel,
    TaskList,
    UriOrExpression,
    by_json_kind,
    by_key,
    invalid,
    require_one_of,
)

__all__ = [
    "Backoff",
    "Catalog",
    "CatchErrors",
    "ConstantBackoff",
    "Endpoint",
    "EndpointConfig",
    "Error",
    "ErrorFilter",
    "ExponentialBackoff",
    "Export",
    "Extension",
    "ExtensionList",
    "ExternalResource",
    "Input",
    "LinearBackoff",
    "Output",
    "RetryAttemptLimit",
    "RetryJitter",
    "RetryLimit",
    "RetryPolicy",
    "RetryPolicyOrReference",
    "Schema",
    "StrOrObject",
    "TaskBase",
    "Timeout",
    "TimeoutOrReference",
    "endpoint_authentication",
    "endpoint_uri",
]

StrOrObject = Annotated[
    Annotated[str, Tag(STRING)] | Annotated[dict[str, Any], Tag(OBJECT)],
    by_json_kind("a runtime expression (a string) or an object"),
]


# -- endpoints ------------------------------------------------------------------------------------


class EndpointConfig(Model):
    uri: UriOrExpression
    authentication: ReferenceableAuthentication | None = None


Endpoint = Annotated[
    Annotated[UriOrExpression, Tag(STRING)] | Annotated[EndpointConfig, Tag(OBJECT)],
    by_json_kind("an endpoint: a URI, a runtime expression, or an object with 'uri'"),
]


def endpoint_uri(endpoint: str | EndpointConfig) -> str:
    """The URI (template) or runtime expression of an endpoint, however it was written."""
    return endpoint if isinstance(endpoint, str) else endpoint.uri


def endpoint_authentication(endpoint: str | EndpointConfig) -> ReferenceableAuthentication | None:
    return None if isinstance(endpoint, str) else endpoint.authentication


class ExternalResource(Model):
    name: str | None = None
    endpoint: Endpoint


class Catalog(Model):
    endpoint: Endpoint


# -- data flow ------------------------------------------------------------------------------------


class Schema(Model):
    """A JSON Schema (by default), inline (``document``) or external (``resource``)."""

    format: str = "json"
    document: Any = None
    resource: ExternalResource | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_source(cls, data: Any) -> Any:
        if isinstance(data, dict):
            require_one_of(data, ("document", "resource"), "a schema")
        return data


class Input(Model):
    schema_: Schema | None = Field(None, alias="schema")
    from_: StrOrObject | None = Field(None, alias="from")


class Output(Model):
    schema_: Schema | None = Field(None, alias="schema")
    as_: StrOrObject | None = Field(None, alias="as")


class Export(Model):
    schema_: Schema | None = Field(None, alias="schema")
    as_: StrOrObject | None = Field(None, alias="as")


# -- timeouts -------------------------------------------------------------------------------------


class Timeout(Model):
    after: Duration


TimeoutOrReference = Annotated[
    Annotated[Timeout, Tag(OBJECT)] | Annotated[str, Tag(STRING)],
    by_json_kind("a timeout: an object with 'after', or the name of a timeout in use.timeouts"),
]


# -- errors ---------------------------------------------------------------------------------------


class Error(Model):
    """An error as RFC 7807 problem details; ``type`` is a URI or a runtime expression."""

    type: UriOrExpression
    status: Int
    instance: str | None = None
    title: str | None = None
    detail: str | None = None


def _not_empty(value: Any, what: str) -> Any:
    if isinstance(value, dict) and not value:
        raise invalid("empty", f"{what} must not be empty", value)
    return value


class ErrorFilter(OpenModel):
    """Static filter of caught errors. DSL 1.0.3 names ``details``; later drafts ``detail``."""

    type: str | None = None
    status: Int | None = None
    instance: str | None = None
    title: str | None = None
    details: str | None = None
    detail: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _some_field(cls, data: Any) -> Any:
        return _not_empty(data, "an error filter")


class CatchErrors(OpenModel):
    with_: ErrorFilter | None = Field(None, alias="with")


# -- retries --------------------------------------------------------------------------------------


class ConstantBackoff(Model):
    kind: ClassVar[str] = "constant"
    constant: dict[str, Any]


class ExponentialBackoff(Model):
    kind: ClassVar[str] = "exponential"
    exponential: dict[str, Any]


class LinearBackoff(Model):
    kind: ClassVar[str] = "linear"
    linear: dict[str, Any]


_backoff_check, _backoff_choice = by_key(("constant", "exponential", "linear"), "a backoff")
Backoff = Annotated[
    Annotated[
        Annotated[ConstantBackoff, Tag(TAG + "constant")]
        | Annotated[ExponentialBackoff, Tag(TAG + "exponential")]
        | Annotated[LinearBackoff, Tag(TAG + "linear")],
        _backoff_choice,
    ],
    _backoff_check,
]


class RetryAttemptLimit(Model):
    count: Int | None = None
    duration: Duration | None = None


class RetryLimit(Model):
    attempt: RetryAttemptLimit | None = None
    duration: Duration | None = None


class RetryJitter(Model):
    from_: Duration = Field(alias="from")
    to: Duration


class RetryPolicy(Model):
    when: str | None = None
    except_when: str | None = None
    delay: Duration | None = None
    backoff: Backoff | None = None
    limit: RetryLimit | None = None
    jitter: RetryJitter | None = None


RetryPolicyOrReference = Annotated[
    Annotated[RetryPolicy, Tag(OBJECT)] | Annotated[str, Tag(STRING)],
    by_json_kind("a retry policy (an object) or the name of one in use.retries"),
]


# -- tasks ----------------------------------------------------------------------------------------


class TaskBase(Model):
    """What every task has. ``kind`` names the task type (``call``, ``do``, ``for``...)."""

    kind: ClassVar[str] = ""

    if_: str | None = Field(None, alias="if")
    input: Input | None = None
    output: Output | None = None
    export: Export | None = None
    timeout: TimeoutOrReference | None = None
    then: str | None = None
    metadata: dict[str, Any] | None = None

    def task_lists(self) -> Sequence[tuple[str, TaskList]]:
        """The task lists nested directly in this task, each with its pointer relative to the
        task (``do``, ``try``, ``catch/do``, ``fork/branches``...)."""
        return ()


class Extension(Model):
    """Tasks to run before and/or after tasks of a type (``extend``), when ``when`` holds."""

    extend: Literal[
        "call", "composite", "emit", "for", "listen", "raise", "run", "set", "switch", "try",
        "wait", "all",
    ]  # fmt: skip
    when: str | None = None
    before: TaskList | None = None
    after: TaskList | None = None


class ExtensionList(NamedList[Extension]):
    what = "an extension list item"
    noun = "extension"

    @classmethod
    def item_type(cls) -> Any:
        return Extension
