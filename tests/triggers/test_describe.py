"""``describe_triggers``: what the CLI, the API and the console show of each trigger, read from
the store on SQLite and PostgreSQL, on the fake clock: next fire times in the schedule's zone
across the spring clock change, who paused it and why, requests waiting counted in the
backlog, a failure with its time, and unknown names refused with the known ones."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

import batonflow as bf
from batonflow.testing import FakeClock
from batonflow.triggers import ScheduleSpec, ScheduleTrigger, Target, TriggerHost, workflow_target
from batonflow.triggers._control import pause, request_trigger
from batonflow.triggers._describe import TriggerNotFound, describe_triggers, find_trigger
from conftest import EngineFactory


@bf.workflow
async def report(ctx: bf.Context, input: dict[str, Any]) -> dict[str, Any]:
    return input


def at(*parts: int) -> float:
    return dt.datetime(*parts, tzinfo=dt.UTC).timestamp()  # type: ignore[misc]


async def refuse(engine: bf.Engine, input: Any, run_id: str, key: str) -> str:
    raise OSError("the CRM is down")


async def test_a_schedule_described_across_the_spring_clock_change(
    make_engine: EngineFactory,
) -> None:
    clock = FakeClock(at(2026, 3, 27, 12))
    nightly = ScheduleTrigger(
        "nightly", ScheduleSpec(cron="30 1 * * *", zone="Europe/London", catchup_window=21600),
        workflow_target(report),
    )  # fmt: skip
    pulse = ScheduleTrigger("pulse", ScheduleSpec(every=3600), workflow_target(report))
    async with make_engine(clock=clock, workflows=[report]) as engine:
        await TriggerHost(engine, [nightly, pulse]).check()
        await pause(engine.store, "nightly", by="olly", now=clock.now(), note="year end")
        for _ in range(2):
            await request_trigger(engine.store, "pulse", by="olly", now=clock.now())
        before = await describe_triggers(engine.store, [nightly, pulse], clock.now())
        await TriggerHost(engine, [pulse]).check()
        await engine.settle()
        [after] = await describe_triggers(engine.store, [pulse], clock.now())
    assert [i.name for i in before] == ["nightly", "pulse"]
    described, waiting = before
    assert described.next == (
        "2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"
    )  # fmt: skip
    # 01:30 does not exist on 29 March in London: it fires at 02:00 BST
    assert described.next_local == (
        "2026-03-28T01:30:00+00:00", "2026-03-29T02:00:00+01:00", "2026-03-30T01:30:00+01:00"
    )  # fmt: skip
    assert (described.zone, described.overlap, described.catchup_window) == (
        "Europe/London", "skip", 21600
    )  # fmt: skip
    assert (described.state, described.paused_by, described.pause_reason) == (
        "paused", "olly", "year end"
    )  # fmt: skip
    assert described.paused_at == "2026-03-27T12:00:00Z"
    assert (waiting.state, waiting.pending_requests, waiting.backlog) == ("active", 2, 2)
    assert waiting.zone == "UTC"  # an interval's default zone
    assert waiting.next_local == tuple(t.replace("Z", "+00:00") for t in waiting.next)
    assert (after.pending_requests, after.backlog) == (0, 0)
    assert after.last_run is not None
    assert after.last_success == "2026-03-27T12:00:00Z"
    assert after.to_dict()["next"] == list(after.next)


async def test_a_failing_schedule_says_what_failed_and_when(make_engine: EngineFactory) -> None:
    clock = FakeClock(at(2026, 6, 1, 8))
    broken = ScheduleTrigger("sync", ScheduleSpec(every=60), Target("crm/sync", refuse))
    async with make_engine(clock=clock) as engine:
        host = TriggerHost(engine, [broken])
        await host.check()
        await clock.advance(60)
        with pytest.raises(OSError, match="the CRM is down"):
            await host.check()
        [info] = await describe_triggers(engine.store, [broken], clock.now())
    assert (info.state, info.workflow) == ("failing", "crm/sync")
    assert info.last_error == "OSError: the CRM is down"
    assert info.last_error_at == "2026-06-01T08:01:00Z"
    assert info.last_success is None


def test_an_unknown_name_is_refused_with_the_known_ones() -> None:
    spec = ScheduleSpec(every=60)
    triggers = [ScheduleTrigger(n, spec, workflow_target(report)) for n in ("zeta", "alpha")]
    assert find_trigger(triggers, "zeta").name == "zeta"
    with pytest.raises(TriggerNotFound, match=r"no trigger named 'beta' \(known: alpha, zeta\)"):
        find_trigger(triggers, "beta")
    assert issubclass(TriggerNotFound, bf.ConfigError)
    with pytest.raises(TriggerNotFound, match="no schedule named 'beta'"):
        find_trigger(triggers, "beta", schedules_only=True)
