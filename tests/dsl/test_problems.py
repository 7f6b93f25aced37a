"""Problem details: standard types, their aliases, and surviving a record and replay."""

from __future__ import annotations

from batonflow._serde import error_from_dict, error_to_dict
from batonflow.dsl import ErrorType, Problem, WorkflowError, canonical_type


def test_the_three_spellings_are_one_type() -> None:
    canonical = "https://serverlessworkflow.io/spec/1.0.0/errors/communication"
    for spelling in (
        canonical,
        "https://serverlessworkflow.io/dsl/errors/types/communication",
        "https://open-workflow-specification.org/spec/1.0.0/errors/communication",
    ):
        assert canonical_type(spelling) == canonical
    assert canonical_type("https://example.com/errors/mine") == "https://example.com/errors/mine"


def test_standard_statuses() -> None:
    assert Problem.of(ErrorType.TIMEOUT).status == 408
    assert Problem.of(ErrorType.AUTHORIZATION).to_dict() == {
        "type": "https://serverlessworkflow.io/spec/1.0.0/errors/authorization",
        "status": 403,
    }


def test_a_workflow_error_keeps_its_problem_through_the_record() -> None:
    problem = Problem.of(ErrorType.COMMUNICATION, "CRM said 503", status=503, instance="/do/0/log")
    rebuilt = error_from_dict(error_to_dict(WorkflowError(problem)))
    assert isinstance(rebuilt, WorkflowError)
    assert rebuilt.problem == problem
    assert str(rebuilt) == "CRM said 503"
