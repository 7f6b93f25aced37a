"""Lifecycle CloudEvents projected from the journal: every task, in order, the same each time."""

from __future__ import annotations

from pathlib import Path

import batonflow as bf
from batonflow.dsl._lifecycle import lifecycle_events
from batonflow.dsl._runtime import DslRuntime
from batonflow.testing import FakeClock

DOCUMENT = {
    "document": {"dsl": "1.0.3", "namespace": "test", "name": "life", "version": "1.0.0"},
    "do": [
        {"outer": {"do": [{"first": {"set": {"a": 1}}}, {"pause": {"wait": {"seconds": 5}}}]}},
        {"boom": {"raise": {"error": {"type": "https://example.com/oops", "status": 418}}}},
    ],
}


async def test_a_runs_history_in_the_specs_events(tmp_path: Path) -> None:
    clock = FakeClock()
    runtime = DslRuntime()
    async with bf.Engine(tmp_path / "l.db", clock=clock, workflows=[runtime.workflow]) as engine:
        handle = await runtime.start(engine, DOCUMENT, {})
        await engine.settle()
        await clock.advance(5)
        await engine.settle()
        run = await engine.get_run(handle.run_id)
        steps = await engine.store.load_steps(handle.run_id)
    events = lifecycle_events(run, steps)
    summary = [(e["type"].split(".")[-2:][0], e["data"].get("task")) for e in events]
    assert summary == [
        ("started", None),
        ("created", "/do/0/outer"),
        ("started", "/do/0/outer"),
        ("created", "/do/0/outer/do/0/first"),
        ("started", "/do/0/outer/do/0/first"),
        ("completed", "/do/0/outer/do/0/first"),
        ("created", "/do/0/outer/do/1/pause"),
        ("started", "/do/0/outer/do/1/pause"),
        ("completed", "/do/0/outer/do/1/pause"),
        ("completed", "/do/0/outer"),
        ("created", "/do/1/boom"),
        ("started", "/do/1/boom"),
        ("faulted", "/do/1/boom"),
        ("faulted", None),
    ]
    assert events[0]["type"] == "io.serverlessworkflow.workflow.started.v1"
    definition = {"name": "life", "namespace": "test", "version": "1.0.0"}
    assert events[0]["data"]["definition"] == definition
    assert events[-1]["data"]["error"]["status"] == 418
    assert events[5]["data"]["output"] == {"a": 1}
    assert len({e["id"] for e in events}) == len(events)
    assert lifecycle_events(run, steps) == events  # a projection: the same every time
