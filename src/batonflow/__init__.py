"""batonflow: durable orchestration for AI workflows.

    import batonflow as bf

    @bf.step(retry=bf.Retry(max_attempts=5))
    async def classify(text: str) -> str: ...

    @bf.workflow
    async def triage(ctx: bf.Context, email: dict) -> dict:
        label = await ctx.step(classify, email["body"])
        return {"label": label}

    async with bf.Engine("runs.db") as engine:
        print(await engine.run(triage, {"body": "..."}))

This module is the whole public API; everything else is private.
"""

from typing import Any

from batonflow._client import Client, RemoteRun
from batonflow._problem import problem_of
from batonflow.core import (
    Clock,
    Context,
    Engine,
    FailedAttempt,
    Hook,
    Queue,
    RateLimit,
    Retry,
    RunEnded,
    RunHandle,
    RunStarted,
    Step,
    StepInfo,
    StoreFailing,
    StoreRecovered,
    SystemClock,
    Workflow,
    current_step,
    load_workflow,
    step,
    workflow,
)
from batonflow.errors import (
    AccessDenied,
    ApprovalRefused,
    BatonflowError,
    ChildWorkflowFailed,
    ConfigError,
    ConnectorDisabled,
    DeadlineExceeded,
    EgressDenied,
    EngineLocked,
    EventTimeout,
    IdempotencyConflict,
    InvalidTransition,
    LeaseLost,
    NonDeterminismError,
    RecordedError,
    RunCancelled,
    RunFailed,
    RunNotFound,
    RunTimeout,
    SerializationError,
    StepTimeout,
    StoreError,
    WorkflowNotFound,
)
from batonflow.store import (
    TRANSITIONS,
    AttemptRecord,
    EventRecord,
    RunRecord,
    RunStatus,
    SQLiteStore,
    StepKind,
    StepRecord,
    StepStatus,
    Store,
    open_store,
)

__version__ = "0.1.0"

#: names loaded on first use, so that ``import batonflow`` stays light (httpx loads with them)
_LAZY = {"make_client": "batonflow._net"}


def __getattr__(name: str) -> Any:
    """``bf.make_client``: the egress-controlled HTTP client every outbound call goes through."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'batonflow' has no attribute {name!r}")


__all__ = [
    "TRANSITIONS",
    "AttemptRecord",
    "AccessDenied",
    "ApprovalRefused",
    "BatonflowError",
    "ChildWorkflowFailed",
    "Client",
    "Clock",
    "ConfigError",
    "ConnectorDisabled",
    "Context",
    "DeadlineExceeded",
    "EgressDenied",
    "Engine",
    "EngineLocked",
    "FailedAttempt",
    "Hook",
    "EventRecord",
    "EventTimeout",
    "IdempotencyConflict",
    "InvalidTransition",
    "LeaseLost",
    "NonDeterminismError",
    "RecordedError",
    "RemoteRun",
    "Queue",
    "RateLimit",
    "Retry",
    "RunCancelled",
    "RunEnded",
    "RunFailed",
    "RunHandle",
    "RunNotFound",
    "RunRecord",
    "RunStarted",
    "RunStatus",
    "RunTimeout",
    "SQLiteStore",
    "SerializationError",
    "Step",
    "StepInfo",
    "StepKind",
    "StoreFailing",
    "StoreRecovered",
    "StepRecord",
    "StepStatus",
    "StepTimeout",
    "Store",
    "StoreError",
    "SystemClock",
    "Workflow",
    "WorkflowNotFound",
    "__version__",
    "current_step",
    "load_workflow",
    "make_client",
    "open_store",
    "problem_of",
    "step",
    "workflow",
]
