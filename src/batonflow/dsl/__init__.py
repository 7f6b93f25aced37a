"""Serverless Workflow DSL 1.0 runtime (in progress): problem details so far."""

from batonflow.dsl._problems import ErrorType, Problem, WorkflowError, canonical_type

__all__ = ["ErrorType", "Problem", "WorkflowError", "canonical_type"]
