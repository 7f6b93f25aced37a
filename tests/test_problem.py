"""``bf.problem_of``: a run's error as one RFC 9457 problem, whatever raised it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import batonflow as bf
from batonflow.dsl import DslRuntime
from batonflow.testing import FakeClock


def test_a_python_error_gets_a_type_from_its_class_and_a_status_from_the_tree() -> None:
    problem = bf.problem_of(ConnectionError("CRM refused the connection"))
    assert problem["type"] == "urn:batonflow:error:builtins.ConnectionError"
    assert problem["status"] == 502
    assert problem["title"] == "ConnectionError"
    assert problem["detail"] == "CRM refused the connection"
    assert problem["class"] == "builtins:ConnectionError"
    assert "instance" not in problem


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (bf.StepTimeout("slow"), 504),
        (bf.EventTimeout("no reply"), 408),
        (bf.RunCancelled("stop"), 409),
        (bf.EgressDenied("not allowed"), 403),
        (bf.WorkflowNotFound("where"), 404),  # nearer than its base ConfigError (400)
        (bf.ConfigError("bad"), 400),
        (bf.EngineLocked("busy"), 423),  # nearer than its base StoreError (503)
        (KeyError("x"), 500),
    ],
)
def test_the_nearest_class_in_the_table_gives_the_status(error: Exception, status: int) -> None:
    problem = bf.problem_of(error)
    assert problem["status"] == status
    assert problem.get("retryable") is getattr(error, "retryable", None)


def test_a_users_error_class_is_described_without_importing_its_module(tmp_path: Path) -> None:
    recorded = {"type": "never_imported_flows:CrmDown", "message": "CRM answered 503"}
    problem = bf.problem_of(recorded)
    assert "never_imported_flows" not in sys.modules
    assert problem == {
        "type": "urn:batonflow:error:never_imported_flows.CrmDown",
        "status": 500,
        "title": "CrmDown",
        "detail": "CRM answered 503",
        "class": "never_imported_flows:CrmDown",
    }


def test_a_failed_child_run_carries_the_childs_problem_as_its_cause() -> None:
    failed = bf.ChildWorkflowFailed(
        "child run c1 faulted", {"type": "builtins:ValueError", "message": "bad total"}
    )
    problem = bf.problem_of(failed)
    assert problem["status"] == 502
    assert problem["cause"]["detail"] == "bad total"
    assert problem["cause"]["class"] == "builtins:ValueError"


def test_an_erased_error_says_so() -> None:
    problem = bf.problem_of({"$erased": True, "subjects": ["s:ab"]})
    assert problem["status"] == 410
    assert problem["title"] == "Erased"


async def test_a_runs_problem(tmp_path: Path) -> None:
    """None for a run without an error; a DSL run's error is the workflow's own problem at
    the top level, with the implementation class beside it and the failed step's position."""
    document = {
        "document": {"dsl": "1.0.3", "namespace": "test", "name": "p", "version": "1.0.0"},
        "do": [
            {"ok": {"set": {"a": 1}}},
            {
                "refuse": {
                    "raise": {
                        "error": {
                            "type": "https://example.com/errors/over-limit",
                            "status": 422,
                            "title": "Over the limit",
                            "detail": "the refund is over the approval limit",
                        }
                    }
                }
            },
        ],
    }
    runtime = DslRuntime()
    async with bf.Engine(tmp_path / "p.db", clock=FakeClock()) as engine:
        done = await runtime.start(engine, {**document, "do": document["do"][:1]}, {})
        failed = await runtime.start(engine, document, {})
        await engine.settle()
        assert bf.problem_of(await engine.get_run(done.run_id)) is None
        run = await engine.get_run(failed.run_id)
        with pytest.raises(bf.RunFailed) as awaited:
            await failed.result()
    problem = bf.problem_of(run)
    assert problem is not None
    assert {k: problem[k] for k in ("type", "status", "title", "detail", "instance")} == {
        "type": "https://example.com/errors/over-limit",
        "status": 422,
        "title": "Over the limit",
        "detail": "the refund is over the approval limit",
        "instance": "/do/1/refuse",
    }
    assert problem["class"] == "batonflow.dsl._problems:WorkflowError"
    recorded = json.loads(run.error_json or "")
    assert problem["step"] == recorded["step"]
    assert bf.problem_of(recorded) == problem  # the recorded error gives the same
    assert bf.problem_of(awaited.value) == problem  # and so does awaiting the run
