"""The seed's failure, end to end: "An API times out. The CRM entry gets skipped. You find out
three days later." A CRM on loopback takes the enquiry and then never answers in time, past
every retry. The run must fault (never complete, never skip the CRM step); once the CRM is
back, ``resume`` completes it, and the CRM holds exactly one entry. In Python and in the DSL,
on SQLite and PostgreSQL, on a fake clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import batonflow as bf
from batonflow.dsl import DslRuntime
from batonflow.testing import FakeClock
from flaky_crm import FlakyCrm

ENQUIRY = {"from": "ann@example.com", "subject": "Where is my refund?"}
TIMEOUT = 10.0  # each attempt's
DELAYS = (5.0, 10.0)  # the backoff before the second and the third attempt


@pytest.fixture
def crm() -> Iterator[FlakyCrm]:
    server = FlakyCrm("slow")
    try:
        yield server
    finally:
        server.close()


async def _time_out_every_attempt(
    engine: bf.Engine, clock: FakeClock, crm: FlakyCrm, handle: bf.RunHandle[Any]
) -> None:
    """Three attempts, each reaching the CRM (which logs the enquiry and then hangs) and
    timing out; the backoffs between them pass on the fake clock."""
    for attempt, delay in enumerate((*DELAYS, None), start=1):
        await crm.arrived(attempt)
        await clock.advance(TIMEOUT)
        await engine.settle()
        if delay is not None:
            assert await handle.status() is bf.RunStatus.WAITING  # backing off, not given up
            await clock.advance(delay)


async def _check_fault_then_resume(
    engine: bf.Engine, crm: FlakyCrm, handle: bf.RunHandle[Any], clock: FakeClock
) -> bf.RunRecord:
    run = await engine.get_run(handle.run_id)
    assert run.status is bf.RunStatus.FAULTED, run.output_json  # not completed, not skipped
    assert run.finished_at is not None
    assert run.finished_at - clock.now() < 1.0  # at the last attempt's timeout, not later
    problem = bf.problem_of(run)
    assert problem is not None
    assert crm.posts == 3
    assert len(crm.enquiries) == 1  # the key kept the CRM from logging it three times
    crm.recover()
    await engine.resume(handle.run_id)
    await engine.settle()
    done = await engine.get_run(handle.run_id)
    assert done.status is bf.RunStatus.COMPLETED, done.error_json
    assert crm.posts == 4
    assert len(crm.enquiries) == 1  # exactly one entry, whatever the timeouts did
    return done


async def test_a_python_workflow(make_engine: Any, clock: FakeClock, crm: FlakyCrm) -> None:
    confirmed: list[str] = []

    async def log_in_crm(enquiry: dict[str, str]) -> dict[str, Any]:
        key = bf.current_step().idempotency_key
        async with httpx.AsyncClient(base_url=crm.url, timeout=60) as client:
            answer = await client.post("/enquiries", json=enquiry, headers={"Idempotency-Key": key})
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    def confirm(crm_id: str) -> str:
        confirmed.append(crm_id)
        return crm_id

    retry = bf.Retry(max_attempts=3, initial_delay=DELAYS[0], backoff=2.0, jitter=0.0)
    logged = bf.step(log_in_crm, name="log_in_crm", timeout=TIMEOUT, retry=retry)
    confirmation = bf.step(confirm, name="confirm")

    async def enquiry_flow(ctx: bf.Context, enquiry: dict[str, str]) -> str:
        entry = await ctx.step(logged, enquiry)
        return await ctx.step(confirmation, entry["id"])

    wf = bf.Workflow(enquiry_flow, name="enquiry_flow")
    async with make_engine(workflows=[wf]) as engine:
        handle = await engine.start(wf, ENQUIRY)
        await _time_out_every_attempt(engine, clock, crm, handle)
        assert confirmed == []  # the flow did not go on without the CRM
        run = await engine.get_run(handle.run_id)
        problem = bf.problem_of(run)
        assert problem is not None
        assert problem["class"] == "batonflow.errors:StepTimeout"
        assert problem["status"] == 504
        assert problem["step"] == "1"
        done = await _check_fault_then_resume(engine, crm, handle, clock)
    assert json.loads(done.output_json or "") == "ENQ-00001"
    assert confirmed == ["ENQ-00001"]


def _document(crm: FlakyCrm) -> dict[str, Any]:
    return {
        "document": {
            "dsl": "1.0.3", "namespace": "seed", "name": "enquiry", "version": "1.0.0",
            "metadata": {"batonflow": {"egress": ["127.0.0.1"], "subjects": "${ [.from] }"}},
        },
        "do": [
            {
                "logInCrm": {
                    "try": [
                        {
                            "post": {
                                "call": "http",
                                "with": {
                                    "method": "post",
                                    "endpoint": f"{crm.url}/enquiries",
                                    "headers": {"Idempotency-Key": '${ $workflow.id + "/crm" }'},
                                    "body": "${ $workflow.input }",
                                },
                                "timeout": {"after": {"seconds": TIMEOUT}},
                            }
                        }
                    ],
                    "catch": {
                        "errors": {
                            "with": {
                                "type": "https://serverlessworkflow.io/spec/1.0.0/errors/timeout"
                            }
                        },
                        "retry": {
                            "delay": {"seconds": DELAYS[0]},
                            "backoff": {"exponential": {}},
                            "limit": {"attempt": {"count": 2}},
                        },
                    },
                    "export": {"as": "${ $context + { crm_id: .id } }"},
                }
            },
            {"confirm": {"set": {"crm_id": "${ $context.crm_id }", "confirmed": True}}},
        ],
    }  # fmt: skip


async def test_a_dsl_workflow(store_url: str, clock: FakeClock, crm: FlakyCrm) -> None:
    from batonflow.governance import wrap_store

    runtime = DslRuntime()
    store = wrap_store(bf.open_store(store_url), now=clock.now)  # the document names subjects
    try:
        async with bf.Engine(store, clock=clock, workflows=[runtime.workflow]) as engine:
            handle = await runtime.start(engine, _document(crm), ENQUIRY)
            await _time_out_every_attempt(engine, clock, crm, handle)
            run = await engine.get_run(handle.run_id)
            steps = await engine.store.load_steps(handle.run_id)
            assert not any("/confirm" in s.name for s in steps)  # never skipped to confirm
            assert bf.problem_of(run) == {
                "type": "https://serverlessworkflow.io/spec/1.0.0/errors/timeout",
                "status": 408,
                "title": "Task timed out",
                "detail": f"the task ran past its {TIMEOUT:g}s timeout",
                "instance": "/do/0/logInCrm/try/0/post",
                "class": "batonflow.dsl._problems:WorkflowError",
                "retryable": False,
                "step": (bf.problem_of(run) or {}).get("step"),
                "traceback": (bf.problem_of(run) or {}).get("traceback"),
            }
            done = await _check_fault_then_resume(engine, crm, handle, clock)
    finally:
        await runtime.aclose()
    assert json.loads(done.output_json or "") == {"crm_id": "ENQ-00001", "confirmed": True}
