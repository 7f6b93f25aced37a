"""Call tasks: HTTP, OpenAPI, gRPC, AsyncAPI, A2A, MCP, and custom functions.

``call`` chooses the type: one of :data:`BUILTIN_CALLS`, or else the name of a function
(``use.functions``, a catalog function ``name:version@catalog``, a function document's URI, or a
function the runtime provides)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag, model_validator

from batonflow.dsl._model.auth import ReferenceableAuthentication
from batonflow.dsl._model.base import (
    OBJECT,
    STRING,
    TAG,
    Duration,
    Int,
    Model,
    OpenModel,
    RuntimeExpression,
    TaskList,
    by_json_kind,
    invalid,
    require_one_of,
)
from batonflow.dsl._model.common import Endpoint, ExternalResource, TaskBase
from batonflow.dsl._model.events import SubscriptionIterator

__all__ = [
    "A2AArguments",
    "AsyncApiArguments",
    "AsyncApiConsumption",
    "AsyncApiMessage",
    "AsyncApiServer",
    "AsyncApiSubscription",
    "BUILTIN_CALLS",
    "CallA2A",
    "CallAsyncApi",
    "CallFunction",
    "CallGrpc",
    "CallHttp",
    "CallMcp",
    "CallOpenApi",
    "CallTask",
    "CallTaskBase",
    "GrpcArguments",
    "GrpcService",
    "HttpArguments",
    "McpArguments",
    "McpClient",
    "McpHttpTransport",
    "McpStdioTransport",
    "McpTransport",
    "OpenApiArguments",
]

#: the call types the DSL defines; any other ``call`` names a function
BUILTIN_CALLS = ("http", "openapi", "grpc", "asyncapi", "a2a", "mcp")

StrMapOrExpression = Annotated[
    Annotated[dict[str, str], Tag(OBJECT)] | Annotated[RuntimeExpression, Tag(STRING)],
    by_json_kind("an object of strings or a runtime expression"),
]
ObjectOrStr = Annotated[
    Annotated[dict[str, Any], Tag(OBJECT)] | Annotated[str, Tag(STRING)],
    by_json_kind("an object or a string"),
]
HttpOutput = Literal["raw", "content", "response"]


class CallTaskBase(TaskBase):
    """A ``call`` task. ``call`` is the protocol or the function's name."""

    kind: ClassVar[str] = "call"
    call: str

    @property
    def is_function(self) -> bool:
        return False


# -- HTTP and OpenAPI -----------------------------------------------------------------------------


class HttpArguments(Model):
    method: str
    endpoint: Endpoint
    headers: StrMapOrExpression | None = None
    body: Any = None
    query: StrMapOrExpression | None = None
    output: HttpOutput = "content"
    redirect: bool = False


class CallHttp(CallTaskBase):
    call: Literal["http"]
    with_: HttpArguments = Field(alias="with")


class OpenApiArguments(Model):
    document: ExternalResource
    operation_id: str
    parameters: dict[str, Any] | None = None
    authentication: ReferenceableAuthentication | None = None
    output: HttpOutput = "content"
    redirect: bool = False


class CallOpenApi(CallTaskBase):
    call: Literal["openapi"]
    with_: OpenApiArguments = Field(alias="with")


# -- gRPC -----------------------------------------------------------------------------------------

_HOST = r"^[a-zA-Z0-9](?:[a-zA-Z0-9-.]{0,61}[a-zA-Z0-9])?$"


class GrpcService(Model):
    name: str
    host: Annotated[str, Field(pattern=_HOST)]
    port: Annotated[Int, Field(ge=0, le=65535)] | None = None
    authentication: ReferenceableAuthentication | None = None


class GrpcArguments(Model):
    proto: ExternalResource
    service: GrpcService
    method: str
    arguments: dict[str, Any] | None = None


class CallGrpc(CallTaskBase):
    call: Literal["grpc"]
    with_: GrpcArguments = Field(alias="with")


# -- AsyncAPI -------------------------------------------------------------------------------------


class AsyncApiServer(Model):
    name: str
    variables: dict[str, Any] | None = None


class AsyncApiMessage(Model):
    payload: dict[str, Any] | None = None
    headers: dict[str, Any] | None = None


class AsyncApiConsumption(Model):
    """How many messages to consume: an ``amount``, ``while`` or ``until`` a condition holds,
    optionally ``for`` a period."""

    for_: Duration | None = Field(None, alias="for")
    amount: Int | None = None
    while_: RuntimeExpression | None = Field(None, alias="while")
    until: RuntimeExpression | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_limit(cls, data: Any) -> Any:
        if isinstance(data, dict):
            require_one_of(data, ("amount", "while", "until"), "a message consumption policy")
        return data


class AsyncApiSubscription(Model):
    filter: RuntimeExpression | None = None
    consume: AsyncApiConsumption
    foreach: SubscriptionIterator | None = None


AsyncApiProtocol = Literal[
    "amqp", "amqp1", "anypointmq", "googlepubsub", "http", "ibmmq", "jms", "kafka", "mercure",
    "mqtt", "mqtt5", "nats", "pulsar", "redis", "sns", "solace", "sqs", "stomp", "ws",
]  # fmt: skip


class AsyncApiArguments(Model):
    """Publish a ``message`` or open a ``subscription``, on an ``operation`` (AsyncAPI 3) or a
    ``channel`` (AsyncAPI 2.6)."""

    document: ExternalResource
    channel: str | None = None
    operation: str | None = None
    server: AsyncApiServer | None = None
    protocol: AsyncApiProtocol | None = None
    message: AsyncApiMessage | None = None
    subscription: AsyncApiSubscription | None = None
    authentication: ReferenceableAuthentication | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_target_one_action(cls, data: Any) -> Any:
        if isinstance(data, dict) and "document" in data:
            require_one_of(data, ("operation", "channel"), "an AsyncAPI call")
            require_one_of(data, ("message", "subscription"), "an AsyncAPI call")
        return data


class CallAsyncApi(CallTaskBase):
    call: Literal["asyncapi"]
    with_: AsyncApiArguments = Field(alias="with")

    def task_lists(self) -> Sequence[tuple[str, TaskList]]:
        subscription = self.with_.subscription
        if subscription and subscription.foreach and subscription.foreach.do is not None:
            return (("with/subscription/foreach/do", subscription.foreach.do),)
        return ()


# -- A2A and MCP ----------------------------------------------------------------------------------

A2AMethod = Literal[
    "message/send", "message/stream", "tasks/get", "tasks/list", "tasks/cancel",
    "tasks/resubscribe", "tasks/pushNotificationConfig/set", "tasks/pushNotificationConfig/get",
    "tasks/pushNotificationConfig/list", "tasks/pushNotificationConfig/delete",
    "agent/getAuthenticatedExtendedCard",
]  # fmt: skip


def _not_empty(value: dict[str, Any]) -> dict[str, Any]:
    if not value:
        raise invalid("empty", "the parameters object must not be empty", value)
    return value


NonEmptyObjectOrStr = Annotated[
    Annotated[dict[str, Any], AfterValidator(_not_empty), Tag(OBJECT)]
    | Annotated[str, Tag(STRING)],
    by_json_kind("an object or a string"),
]


class A2AArguments(Model):
    agent_card: ExternalResource | None = None
    server: Endpoint | None = None
    method: A2AMethod
    parameters: NonEmptyObjectOrStr | None = None


class CallA2A(CallTaskBase):
    call: Literal["a2a"]
    with_: A2AArguments = Field(alias="with")


class McpHttpTransport(OpenModel):
    endpoint: Endpoint
    headers: dict[str, str] | None = None


class McpStdioTransport(OpenModel):
    command: str
    arguments: list[str] | None = None
    environment: dict[str, str] | None = None


class McpTransport(OpenModel):
    http: McpHttpTransport | None = None
    stdio: McpStdioTransport | None = None
    options: dict[str, str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_transport(cls, data: Any) -> Any:
        if isinstance(data, dict):
            require_one_of(data, ("http", "stdio"), "an MCP transport")
        return data


class McpClient(OpenModel):
    name: str
    version: Any  # required, of no given type (DSL 1.0.3 declares only `description`)
    description: str | None = None


McpMethod = Literal[
    "tools/list", "tools/call", "prompts/list", "prompts/get", "resources/list",
    "resources/read", "resources/templates/list",
]  # fmt: skip


class McpArguments(OpenModel):
    protocol_version: str = "2025-06-18"
    method: McpMethod
    parameters: ObjectOrStr | None = None
    timeout: Duration | None = None
    transport: McpTransport
    client: McpClient | None = None


class CallMcp(CallTaskBase):
    call: Literal["mcp"]
    with_: McpArguments = Field(alias="with")


# -- functions ------------------------------------------------------------------------------------


class CallFunction(CallTaskBase):
    """A call of a function by name, with arguments ``with``."""

    with_: dict[str, Any] | None = Field(None, alias="with")

    @property
    def is_function(self) -> bool:
        return True

    @property
    def function(self) -> str:
        return self.call

    @property
    def catalog_reference(self) -> tuple[str, str, str] | None:
        """``(name, version, catalog)`` for a ``name:version@catalog`` call, else ``None``."""
        head, at, catalog = self.call.rpartition("@")
        name, colon, version = head.partition(":")
        if at and colon and name and version and catalog and "/" not in self.call:
            return name, version, catalog
        return None


def _call_kind(value: Any) -> str | None:
    if isinstance(value, CallTaskBase):  # serializing
        return TAG + ("function" if value.is_function else value.call)
    if not isinstance(value, dict):
        return None
    call = value.get("call")
    return TAG + (call if isinstance(call, str) and call in BUILTIN_CALLS else "function")


CallTask = Annotated[
    Annotated[CallHttp, Tag(TAG + "http")]
    | Annotated[CallOpenApi, Tag(TAG + "openapi")]
    | Annotated[CallGrpc, Tag(TAG + "grpc")]
    | Annotated[CallAsyncApi, Tag(TAG + "asyncapi")]
    | Annotated[CallA2A, Tag(TAG + "a2a")]
    | Annotated[CallMcp, Tag(TAG + "mcp")]
    | Annotated[CallFunction, Tag(TAG + "function")],
    Discriminator(
        _call_kind,
        custom_error_type="wrong_type",
        custom_error_message="expected a task (an object)",
    ),
]
