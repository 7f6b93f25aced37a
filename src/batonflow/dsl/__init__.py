"""Serverless Workflow DSL 1.0 runtime (in progress): problem details so far."""

from batonflow.dsl._expr import (
    STANDARD_ARGUMENTS,
    Arguments,
    check,
    check_template,
    evaluate,
    evaluate_condition,
    evaluate_template,
    is_expression,
    is_variable_name,
)
from batonflow.dsl._problems import ErrorType, Problem, WorkflowError, canonical_type

__all__ = ["ErrorType", "Problem", "WorkflowError", "canonical_type"]
__all__ += [
    "STANDARD_ARGUMENTS",
    "Arguments",
    "check",
    "check_template",
    "evaluate",
    "evaluate_condition",
    "evaluate_template",
    "is_expression",
    "is_variable_name",
]
