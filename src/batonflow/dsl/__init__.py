"""Serverless Workflow DSL 1.0 runtime: load and validate documents, run them durably."""

from batonflow.dsl._expr import (
    STANDARD_ARGUMENTS,
    Arguments,
    Evaluator,
    ExpressionBudget,
    check,
    check_template,
    evaluate,
    evaluate_condition,
    evaluate_template,
    is_expression,
    is_variable_name,
)
from batonflow.dsl._loader import (
    DocumentProblem,
    DslDocument,
    DslValidationError,
    load_document,
)
from batonflow.dsl._model.base import (
    DurationInline,
    Entry,
    FlowDirective,
    TaskList,
    duration_to_timedelta,
    is_flow_directive,
)
from batonflow.dsl._model.calls import (
    BUILTIN_CALLS,
    CallA2A,
    CallAsyncApi,
    CallFunction,
    CallGrpc,
    CallHttp,
    CallMcp,
    CallOpenApi,
    CallTaskBase,
)
from batonflow.dsl._model.common import TaskBase, endpoint_authentication, endpoint_uri
from batonflow.dsl._model.tasks import (
    TASK_KINDS,
    DoTask,
    EmitTask,
    ForkTask,
    ForTask,
    ListenTask,
    RaiseTask,
    RunTask,
    SetTask,
    SwitchTask,
    Task,
    TryTask,
    WaitTask,
)
from batonflow.dsl._model.workflow import Document, Schedule, TaskRef, Use, Workflow
from batonflow.dsl._problems import ErrorType, Problem, WorkflowError, canonical_type
from batonflow.dsl._yaml import Position, Positions

__all__ = ["ErrorType", "Problem", "WorkflowError", "canonical_type"]
__all__ += [
    "STANDARD_ARGUMENTS",
    "Arguments",
    "Evaluator",
    "ExpressionBudget",
    "check",
    "check_template",
    "evaluate",
    "evaluate_condition",
    "evaluate_template",
    "is_expression",
    "is_variable_name",
]

__all__ += [
    "BUILTIN_CALLS",
    "CallA2A",
    "CallAsyncApi",
    "CallFunction",
    "CallGrpc",
    "CallHttp",
    "CallMcp",
    "CallOpenApi",
    "CallTaskBase",
    "DoTask",
    "Document",
    "DocumentProblem",
    "DslDocument",
    "DslValidationError",
    "DurationInline",
    "EmitTask",
    "Entry",
    "FlowDirective",
    "ForTask",
    "ForkTask",
    "ListenTask",
    "Position",
    "Positions",
    "RaiseTask",
    "RunTask",
    "Schedule",
    "SetTask",
    "SwitchTask",
    "TASK_KINDS",
    "Task",
    "TaskBase",
    "TaskList",
    "TaskRef",
    "TryTask",
    "Use",
    "WaitTask",
    "Workflow",
    "duration_to_timedelta",
    "endpoint_authentication",
    "endpoint_uri",
    "is_flow_directive",
    "load_document",
]

from batonflow.dsl._graph import mermaid  # noqa: E402
from batonflow.dsl._lifecycle import lifecycle_events  # noqa: E402
from batonflow.dsl._runtime import WORKFLOW_NAME, DslRuntime  # noqa: E402

__all__ += ["WORKFLOW_NAME", "DslRuntime", "lifecycle_events", "mermaid"]

from batonflow.dsl._dataflow.meta import DataflowConfig, load_dataflow_config  # noqa: E402
from batonflow.dsl._dataflow.record import record_of_processing  # noqa: E402
from batonflow.dsl._dataflow.report import DataflowReport, Flow, analyse_dataflow  # noqa: E402

__all__ += [
    "DataflowConfig",
    "DataflowReport",
    "Flow",
    "analyse_dataflow",
    "load_dataflow_config",
    "record_of_processing",
]
