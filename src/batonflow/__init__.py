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

from batonflow._client import Client, RemoteRun
from batonflow.core import (
    Clock,
    Context,
    Engine,
    Queue,
    RateLimit,
    Retry,
    RunHandle,
    Step,
    StepInfo,
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
    "RunFailed",
    "RunHandle",
    "RunNotFound",
    "RunRecord",
    "RunStatus",
    "RunTimeout",
    "SQLiteStore",
    "SerializationError",
    "Step",
    "StepInfo",
    "StepKind",
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
    "open_store",
    "step",
    "workflow",
]
