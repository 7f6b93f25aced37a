"""A switch's routing decision goes on the audit trail once, with the condition that chose it."""

from __future__ import annotations

import json
from pathlib import Path

import batonflow as bf
from batonflow.dsl._runtime import DslRuntime
from batonflow.testing import FakeClock

DOCUMENT = {
    "document": {"dsl": "1.0.3", "namespace": "test", "name": "route", "version": "1.0.0"},
    "do": [
        {"label": {"set": {"kind": "${ .kind }"}}},
        {
            "route": {
                "switch": [
                    {"refund": {"when": '${ .kind == "refund" }', "then": "pause"}},
                    {"complaint": {"when": '${ .kind == "complaint" }', "then": "pause"}},
                    {"otherwise": {"then": "end"}},
                ]
            }
        },
        {"pause": {"wait": {"seconds": 5}}},
        {"after": {"set": {"done": True}}},
    ],
}


async def _decisions(tmp_path: Path, kind: str) -> list[dict[str, object]]:
    clock = FakeClock()
    runtime = DslRuntime()
    async with bf.Engine(tmp_path / "r.db", clock=clock, workflows=[runtime.workflow]) as engine:
        handle = await runtime.start(engine, DOCUMENT, {"kind": kind})
        await engine.settle()
        await clock.advance(5)  # the run parked after the switch: it is replayed through it
        await engine.settle()
        assert (await engine.get_run(handle.run_id)).status is bf.RunStatus.COMPLETED
        trail = await engine.store.read_audit(run_id=handle.run_id)
    return [json.loads(r.data_json) for r in trail if r.kind == "route.decision"]


async def test_the_case_taken_and_the_cases_passed_over(tmp_path: Path) -> None:
    (decision,) = await _decisions(tmp_path, "complaint")
    assert decision == {
        "task": "/do/1/route",
        "case": "complaint",
        "when": '${ .kind == "complaint" }',
        "then": "pause",
        "not_matched": ["refund"],
    }


async def test_the_default_case_is_recorded_as_such(tmp_path: Path) -> None:
    (decision,) = await _decisions(tmp_path, "question")
    assert decision["case"] == "otherwise"
    assert decision["when"] is None
    assert decision["not_matched"] == ["refund", "complaint"]
