"""A document's `schedule.on`: each published CloudEvent that matches starts one run (input:
the list of events), however often it is published and however many processes host the
trigger; events wait in the store while no process hosts it or while it is paused."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import batonflow as bf
from batonflow.dsl import DslRuntime, load_document
from batonflow.dsl._events import publish
from batonflow.testing import FakeClock
from batonflow.triggers import TriggerHost, document_schedule
from batonflow.triggers._control import pause, resume
from batonflow.triggers._on_events import INBOX_RECORD
from conftest import EngineFactory

DOCUMENT = """
document: {dsl: '1.0.3', namespace: office, name: welcome, version: '1.0.0'}
schedule:
  on:
    any:
      - with: {type: client.new, source: "https://crm.example.org"}
      - with: {type: client.returned}
do:
  - greet:
      set:
        email: ${ .[0].data.email }
        kind: ${ .[0].type }
"""


def event(
    n: int, type: str = "client.new", source: str = "https://crm.example.org"
) -> dict[str, Any]:
    return {"specversion": "1.0", "id": f"e{n}", "source": source, "type": type,
            "data": {"email": f"c{n}@example.org"}}  # fmt: skip


async def test_each_matching_event_starts_one_run(
    make_engine: EngineFactory, clock: FakeClock
) -> None:
    runtime = DslRuntime()
    document = dict(load_document("welcome.yaml", text=DOCUMENT).raw)
    first, second = (document_schedule(document, runtime) for _ in range(2))
    assert first is not None
    assert second is not None
    async with make_engine(clock=clock, workflows=[runtime.workflow]) as engine:
        store = engine.store
        hosts = [TriggerHost(engine, [first]), TriggerHost(engine, [second])]  # two "processes"
        await hosts[0].check()  # subscribes: from now on events are taken
        await asyncio.gather(*[publish(store, event(1), clock.now()) for _ in range(3)])
        await publish(
            store, event(2, type="client.returned", source="https://shop.example.org"), clock.now()
        )
        await publish(
            store, event(3, source="https://other.example.org"), clock.now()
        )  # matches no filter
        await publish(store, event(4, type="invoice.paid"), clock.now())
        (status,) = await hosts[1].status()
        assert status["backlog"] == 2
        done = [d for h in hosts for d in await h.check()]
        assert [await h.check() for h in hosts] == [[], []]
        await engine.settle()
        runs = await store.list_runs(workflow="office/welcome")
        trail = [e.kind for e in await store.read_audit() if e.kind.startswith("trigger.event")]
    assert len(done) == 2
    outputs = sorted(json.loads(r.output_json or "null")["email"] for r in runs)
    assert outputs == ["c1@example.org", "c2@example.org"]
    assert all(r.status is bf.RunStatus.COMPLETED for r in runs)
    assert sorted(json.loads(r.input_json)["input"][0]["id"] for r in runs) == ["e1", "e2"]
    assert trail.count("trigger.event.claimed") == 2
    assert trail.count("trigger.event.started") == 2
    await runtime.aclose()


async def test_events_wait_while_the_trigger_is_paused(
    make_engine: EngineFactory, clock: FakeClock
) -> None:
    runtime = DslRuntime()
    trigger = document_schedule(dict(load_document("w.yaml", text=DOCUMENT).raw), runtime)
    assert trigger is not None
    async with make_engine(clock=clock, workflows=[runtime.workflow]) as engine:
        host = TriggerHost(engine, [trigger])
        await host.check()
        await pause(engine.store, trigger.name, by="ops", now=clock.now())
        await publish(engine.store, event(5), clock.now())
        assert await host.check() == []
        (status,) = await host.status()
        assert (status["state"], status["backlog"]) == ("paused", 1)
        await resume(engine.store, trigger.name, by="ops", now=clock.now())
        (started,) = await host.check()
        await engine.settle()
        run = await engine.get_run(started["run_id"])
    assert run.status is bf.RunStatus.COMPLETED
    assert json.loads(run.output_json or "null") == {"email": "c5@example.org",
                                                     "kind": "client.new"}  # fmt: skip
    await runtime.aclose()


async def test_an_event_queued_by_a_process_that_died_before_claiming_it_still_runs_once(
    make_engine: EngineFactory, clock: FakeClock
) -> None:
    runtime = DslRuntime()
    trigger = document_schedule(dict(load_document("w.yaml", text=DOCUMENT).raw), runtime)
    assert trigger is not None
    async with make_engine(clock=clock, workflows=[runtime.workflow]) as engine:
        host = TriggerHost(engine, [trigger])
        await host.check()
        key = f"{trigger.name}|https://crm.example.org|e6"
        await engine.store.add_record(INBOX_RECORD, key, json.dumps(event(6)), clock.now())
        (started,) = await host.check()
        await publish(engine.store, event(6), clock.now())  # the sender publishes it again
        assert await host.check() == []
        await engine.settle()
        runs = await engine.store.list_runs(workflow="office/welcome")
        queued = await engine.store.list_records(INBOX_RECORD)
    assert [r.id for r in runs] == [started["run_id"]]
    assert queued == []
    await runtime.aclose()


async def test_a_subscription_nobody_renews_for_a_week_takes_no_more_events(
    make_engine: EngineFactory, clock: FakeClock
) -> None:
    runtime = DslRuntime()
    trigger = document_schedule(dict(load_document("w.yaml", text=DOCUMENT).raw), runtime)
    assert trigger is not None
    async with make_engine(clock=clock, workflows=[runtime.workflow]) as engine:
        await TriggerHost(engine, [trigger]).check()  # hosted once, then its document is gone
        await clock.advance(6 * 86400)
        await publish(engine.store, event(7), clock.now())  # within the week: kept
        await clock.advance(2 * 86400)
        await publish(engine.store, event(8), clock.now())  # nobody renewed it: not kept
        queued = [k for k, _ in await engine.store.list_records(INBOX_RECORD)]
    assert queued == [f"{trigger.name}|https://crm.example.org|e7"]
    await runtime.aclose()
