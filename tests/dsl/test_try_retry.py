"""What becomes of a caught error: retried, failed once the retries are used up, handled by
``catch.do`` / ``catch.then``, or deliberately ignored; each noted on the audit trail. And the
sample in docs/dsl.md does what the page says."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import batonflow as bf
from batonflow.dsl import DslRuntime, load_document
from batonflow.testing import FakeClock
from flaky_crm import FlakyCrm

DOCS = Path(__file__).resolve().parents[2] / "docs" / "dsl.md"
HEADER = {"dsl": "1.0.3", "namespace": "test", "name": "caught", "version": "1.0.0"}


class Down:
    """A function that always fails, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        raise ConnectionError(f"down (call {self.calls})")


def _document(catch: dict[str, Any]) -> dict[str, Any]:
    return {
        "document": HEADER,
        "do": [
            {"guarded": {"try": [{"callIt": {"call": "down"}}], "catch": catch}},
            {"after": {"set": {"went_on": True}}},
        ],
    }


async def _run(
    tmp_path: Path, catch: dict[str, Any], *, waits: tuple[float, ...] = ()
) -> tuple[bf.RunRecord, list[dict[str, Any]], int]:
    clock, down = FakeClock(), Down()
    runtime = DslRuntime(functions={"down": down})
    async with bf.Engine(tmp_path / "c.db", clock=clock, workflows=[runtime.workflow]) as engine:
        handle = await runtime.start(engine, _document(catch), {"n": 1})
        await engine.settle()
        for seconds in waits:  # the backoffs between retries
            await clock.advance(seconds)
            await engine.settle()
        run = await engine.get_run(handle.run_id)
        trail = await engine.store.read_audit(run_id=handle.run_id)
    notes = [json.loads(r.data_json) for r in trail if r.kind == "task.error_caught"]
    return run, notes, down.calls


async def test_used_up_retries_fail_the_task_with_the_last_error(tmp_path: Path) -> None:
    retry = {"delay": {"seconds": 1}, "limit": {"attempt": {"count": 2}}}
    run, notes, calls = await _run(tmp_path, {"retry": retry}, waits=(1, 1))
    assert run.status is bf.RunStatus.FAULTED
    problem = bf.problem_of(run)
    assert problem is not None
    assert problem["detail"] == "ConnectionError: down (call 3)"  # the last attempt's
    assert problem["instance"] == "/do/0/guarded/try/0/callIt"
    assert calls == 3
    assert [(n["outcome"], n["retries"]) for n in notes] == [
        ("retried", 0), ("retried", 1), ("failed", 2),
    ]  # fmt: skip
    assert notes[-1]["instance"] == "/do/0/guarded/try/0/callIt"


async def test_a_retry_policy_that_refuses_fails_the_task_at_once(tmp_path: Path) -> None:
    retry = {"when": "${ $error.status == 503 }", "limit": {"attempt": {"count": 5}}}
    run, notes, calls = await _run(tmp_path, {"retry": retry})
    assert run.status is bf.RunStatus.FAULTED
    assert calls == 1
    assert [n["outcome"] for n in notes] == ["failed"]


async def test_catch_do_is_the_alternate_path_after_the_retries(tmp_path: Path) -> None:
    catch = {
        "retry": {"limit": {"attempt": {"count": 1}}},
        "do": [{"fallback": {"set": {"queued": "${ $error.detail }"}}}],
    }
    run, notes, calls = await _run(tmp_path, catch)
    assert run.status is bf.RunStatus.COMPLETED, run.error_json
    assert json.loads(run.output_json or "") == {"went_on": True}
    assert calls == 2
    assert [n["outcome"] for n in notes] == ["retried", "handled"]


async def test_a_bare_catch_ignores_the_error_and_says_so(tmp_path: Path) -> None:
    run, notes, calls = await _run(tmp_path, {"errors": {"with": {"status": 500}}})
    assert run.status is bf.RunStatus.COMPLETED
    assert calls == 1
    assert [(n["outcome"], n["status"]) for n in notes] == [("ignored", 500)]


async def test_an_unmatched_error_passes_through_unnoted(tmp_path: Path) -> None:
    retry = {"limit": {"attempt": {"count": 3}}}
    run, notes, calls = await _run(tmp_path, {"errors": {"with": {"status": 503}}, "retry": retry})
    assert run.status is bf.RunStatus.FAULTED
    assert (calls, notes) == (1, [])


# -- the sample in docs/dsl.md -----------------------------------------------------------------


def _docs_sample() -> str:
    text = DOCS.read_text()
    found = re.search(r"```yaml\n(document: \{[^\n]*name: log-enquiry.*?)```", text, re.S)
    assert found, "the log-enquiry sample is gone from docs/dsl.md"
    return found.group(1)


@pytest.fixture
def crm() -> Iterator[FlakyCrm]:
    server = FlakyCrm("slow")
    try:
        yield server
    finally:
        server.close()


async def test_the_docs_sample_notes_the_outage_then_fails(tmp_path: Path, crm: FlakyCrm) -> None:
    """Four retries of a call that times out, then catch.do: it notes the outage and raises the
    workflow's own error, which faults the run; the CRM logged the enquiry once."""
    source = _docs_sample().replace("https://crm.example.com", crm.url)
    document = load_document("docs/dsl.md", text=source).raw
    document["document"]["metadata"] = {"batonflow": {"egress": ["127.0.0.1"]}}
    clock, runtime = FakeClock(), DslRuntime()
    try:
        async with bf.Engine(tmp_path / "d.db", clock=clock) as engine:
            handle = await runtime.start(engine, document, {"from": "ann@example.com"})
            for attempt, delay in enumerate([10, 20, 40, 80, 0], start=1):
                await crm.arrived(attempt)
                await clock.advance(30)  # the call's timeout
                await engine.settle()
                await clock.advance(delay)
            run = await engine.get_run(handle.run_id)
            crm.recover()  # as the page says, resume retries the raise, not the call
            await engine.resume(handle.run_id)
            await engine.settle()
            again = await engine.get_run(handle.run_id)
    finally:
        await runtime.aclose()
    assert run.status is bf.RunStatus.FAULTED
    problem = bf.problem_of(run)
    assert problem is not None
    assert {k: problem[k] for k in ("type", "status", "title", "instance")} == {
        "type": "https://example.com/errors/crm-down",
        "status": 503,
        "title": "The CRM did not log the enquiry",
        "instance": "/do/0/logInCrm/catch/do/1/fail",
    }
    assert crm.posts == 5
    assert len(crm.enquiries) == 1
    assert again.status is bf.RunStatus.FAULTED
    assert bf.problem_of(again) == {
        **problem,
        "traceback": (bf.problem_of(again) or {})["traceback"],
    }


async def test_a_sub_flows_own_error_reaches_the_parent(tmp_path: Path) -> None:
    """The parent sees the child's problem (its type, status, title, detail) at the task that
    ran it: a catch can filter on it, and uncaught it is the parent run's problem."""
    child = {
        "document": {**HEADER, "name": "refund"},
        "do": [
            {
                "refuse": {
                    "raise": {
                        "error": {
                            "type": "https://example.com/errors/over-limit",
                            "status": 422,
                            "title": "Over the limit",
                            "detail": "a refund over 500 needs a partner",
                        }
                    }
                }
            }
        ],
    }
    ref = {"namespace": "test", "name": "refund", "version": "1.0.0"}
    caught = {
        "document": {**HEADER, "name": "caught-parent"},
        "do": [
            {
                "refund": {
                    "try": [{"runIt": {"run": {"workflow": ref}}}],
                    "catch": {
                        "errors": {"with": {"type": "https://example.com/errors/over-limit"}},
                        "do": [{"escalate": {"set": {"escalated": "${ $error.title }"}}}],
                    },
                }
            }
        ],
    }
    uncaught = {
        "document": {**HEADER, "name": "parent"},
        "do": [{"runIt": {"run": {"workflow": ref}}}],
    }
    runtime = DslRuntime()
    runtime.add_document(child)
    async with bf.Engine(tmp_path / "s.db", clock=FakeClock()) as engine:
        handled = await runtime.start(engine, caught, {})
        failed = await runtime.start(engine, uncaught, {})
        await engine.settle()
        handled_run = await engine.get_run(handled.run_id)
        failed_run = await engine.get_run(failed.run_id)
    assert handled_run.status is bf.RunStatus.COMPLETED, handled_run.error_json
    assert json.loads(handled_run.output_json or "") == {"escalated": "Over the limit"}
    problem = bf.problem_of(failed_run)
    assert problem is not None
    assert {k: problem[k] for k in ("type", "status", "title", "detail", "instance")} == {
        "type": "https://example.com/errors/over-limit",
        "status": 422,
        "title": "Over the limit",
        "detail": "a refund over 500 needs a partner",
        "instance": "/do/0/runIt",
    }
