"""The durable kernel: engine, workflow context, retries, timers, events, children."""

from batonflow.core._around import Activation, Around
from batonflow.core._clock import Clock, SystemClock
from batonflow.core._context import Context, StepInfo, current_step
from batonflow.core._engine import Engine
from batonflow.core._handle import RunHandle
from batonflow.core._hooks import (
    FailedAttempt,
    Hook,
    RunEnded,
    RunStarted,
    StoreFailing,
    StoreRecovered,
)
from batonflow.core._loader import load_workflow
from batonflow.core._queues import Queue, RateLimit
from batonflow.core._retry import Retry
from batonflow.core._trail import TrailEntry, audit
from batonflow.core._workflow import (
    Prepare,
    Redact,
    Step,
    StepOptions,
    Workflow,
    step,
    takes_context,
    wants_context,
    workflow,
)

__all__ = [
    "Activation",
    "Around",
    "FailedAttempt",
    "Clock",
    "Context",
    "Engine",
    "Hook",
    "Prepare",
    "Queue",
    "RateLimit",
    "Redact",
    "Retry",
    "RunEnded",
    "RunHandle",
    "RunStarted",
    "Step",
    "StepInfo",
    "StepOptions",
    "StoreFailing",
    "StoreRecovered",
    "SystemClock",
    "TrailEntry",
    "Workflow",
    "audit",
    "current_step",
    "load_workflow",
    "step",
    "takes_context",
    "wants_context",
    "workflow",
]
