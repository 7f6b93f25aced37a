"""Issue #13, schedules: cron in Europe/London across both 2026 clock changes, intervals, a
downtime with catch-up, every overlap policy, operator actions, alerts, and one run per tick
with two engines on one store. All on the fake clock; no test sleeps."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import batonflow as bf
from batonflow.governance import Alert, AlertHook
from batonflow.testing import FakeClock
from batonflow.triggers import (
    Overlap,
    ScheduleSpec,
    ScheduleTrigger,
    Target,
    TriggerHost,
    run_id_for,
    workflow_target,
)
from batonflow.triggers._control import pause, request_backfill, request_trigger, resume
from conftest import EngineFactory

LONDON = ZoneInfo("Europe/London")
UTC = dt.UTC


def at(*parts: int, tz: dt.tzinfo = UTC) -> float:
    return dt.datetime(*parts, tzinfo=tz).timestamp()  # type: ignore[misc]


def utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


@bf.workflow
async def report(ctx: bf.Context, input: dict[str, Any]) -> dict[str, Any]:
    return input


@bf.workflow
async def long_job(ctx: bf.Context, input: dict[str, Any]) -> object:
    """Stays open until an event ``done`` keyed by its tick arrives."""
    return await ctx.wait_for_event("done", key=input["scheduled_at"])


async def runs_of(engine: bf.Engine, wf: str) -> list[bf.RunRecord]:
    runs = await engine.store.list_runs(workflow=wf, limit=1000)
    return sorted(runs, key=lambda r: r.created_at)


def host(engine: bf.Engine, wf: bf.Workflow[Any, Any], **spec: Any) -> TriggerHost:
    return TriggerHost(engine, [ScheduleTrigger(wf.name, ScheduleSpec(**spec),
                                                workflow_target(wf))])  # fmt: skip


async def step_through(
    clock: FakeClock, engine: bf.Engine, triggers: TriggerHost, until: float, by: float
) -> None:
    """Move the clock to ``until`` in steps of ``by`` seconds, one pass after each."""
    while clock.now() < until:
        await clock.advance(min(by, until - clock.now()))
        await triggers.check()
        await engine.settle()


# -- when ticks fall ---------------------------------------------------------------------------
def test_spring_forward_loses_no_run() -> None:
    spec = ScheduleSpec(cron="30 1 * * *", zone="Europe/London")
    ticks = [utc(t) for t in spec.upcoming(at(2026, 3, 27, 12), 4)]
    # 01:30 does not exist on 29 March: it fires at the first instant after the gap, 02:00 BST
    assert ticks == ["2026-03-28 01:30", "2026-03-29 01:00", "2026-03-30 00:30", "2026-03-31 00:30"]


def test_fall_back_runs_nothing_twice() -> None:
    spec = ScheduleSpec(cron="30 1 * * *", zone="Europe/London")
    ticks = [utc(t) for t in spec.upcoming(at(2026, 10, 24, 12), 2)]
    assert ticks == ["2026-10-25 00:30", "2026-10-26 01:30"]  # 01:30 BST only, then GMT
    during = ScheduleSpec(cron="*/30 1 * * *", zone="Europe/London")
    ticks = [utc(t) for t in during.upcoming(at(2026, 10, 24, 12), 3)]
    assert ticks == ["2026-10-25 00:00", "2026-10-25 00:30", "2026-10-26 01:00"]


def test_hourly_keeps_real_time_rhythm_through_both_changes() -> None:
    hourly = ScheduleSpec(cron="0 * * * *", zone="Europe/London")
    autumn = [utc(t) for t in hourly.upcoming(at(2026, 10, 24, 23, 30), 4)]
    assert autumn == [
        "2026-10-25 00:00",
        "2026-10-25 01:00",
        "2026-10-25 02:00",
        "2026-10-25 03:00",
    ]
    spring = [utc(t) for t in hourly.upcoming(at(2026, 3, 29, 0, 30), 2)]
    assert spring == ["2026-03-29 01:00", "2026-03-29 02:00"]


def test_interval_ticks_are_elapsed_time_from_the_epoch() -> None:
    spec = ScheduleSpec(every=900, offset=60)
    assert [utc(t) for t in spec.upcoming(at(2026, 3, 29, 0, 59), 3)] == [
        "2026-03-29 01:01", "2026-03-29 01:16", "2026-03-29 01:31"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, "exactly one of cron, every, after"),
        ({"cron": "0 9 * *"}, "expected five fields"),
        ({"cron": "0 9 * * *", "every": 60}, "got cron, every"),
        ({"every": "PT0S"}, "positive duration"),
        ({"every": "soon"}, "'soon' is not a duration"),
        ({"every": 60, "zone": "Europe/Londres"}, "IANA time zone"),
        ({"every": 60, "overlap": "queue"}, "'queue' is not one of skip, buffer_one"),
        ({"every": 60, "catchup_window": 1}, "at least 10 seconds"),
        ({"every": 60, "evry": 1}, "unknown key(s) evry"),
    ],
)
def test_bad_schedules_say_where_and_what(table: dict[str, Any], message: str) -> None:
    with pytest.raises(bf.ConfigError, match=r"batonflow\.toml: \[triggers\.schedules\.x\]") as err:
        ScheduleSpec.parse(table, "batonflow.toml: [triggers.schedules.x]")
    assert message in str(err.value)


# -- acting on ticks -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("start", "day"),
    [((2026, 3, 27, 12), "2026-03-29 01:00"), ((2026, 10, 23, 12), "2026-10-25 00:30")],
)
async def test_one_run_per_day_across_each_clock_change(
    make_engine: EngineFactory, start: tuple[int, ...], day: str
) -> None:
    clock = FakeClock(at(*start))
    async with make_engine(clock=clock) as engine:
        triggers = host(engine, report, cron="30 1 * * *", zone="Europe/London")
        await triggers.check()
        await step_through(clock, engine, triggers, clock.now() + 4 * 86400, 600)
        runs = await runs_of(engine, "report")
    assert len(runs) == 4
    assert all(r.status is bf.RunStatus.COMPLETED for r in runs)
    fired = [utc(r.created_at) for r in runs]
    assert [json.loads(r.input_json)["scheduled_at"][:16].replace("T", " ") for r in runs] == fired
    assert day in fired
    assert len(set(fired)) == 4


async def test_downtime_is_caught_up_within_the_window(make_engine: EngineFactory) -> None:
    clock = FakeClock(at(2026, 6, 1, 8))
    spec = {"every": 3600, "catchup_window": 3 * 3600 - 1, "overlap": Overlap.ALLOW_ALL}
    async with make_engine(clock=clock) as engine:
        triggers = host(engine, report, **spec)
        await triggers.check()
        await step_through(clock, engine, triggers, at(2026, 6, 1, 10), 3600)
        assert len(await runs_of(engine, "report")) == 2  # 09:00, 10:00
    await clock.advance(10 * 3600)  # down from 10:00 to 20:00
    async with make_engine(clock=clock) as engine:
        triggers = host(engine, report, **spec)
        done = await triggers.check()
        await engine.settle()
        runs = await runs_of(engine, "report")
        status = (await triggers.status())[0]
    started = [d["at"] for d in done if d["action"] == "start"]
    assert started == ["2026-06-01T18:00:00Z", "2026-06-01T19:00:00Z", "2026-06-01T20:00:00Z"]
    assert len(runs) == 5
    assert status["missed"] == 7  # 11:00 ... 17:00
    assert status["backlog"] == 0
    assert status["next"][0] == "2026-06-01T21:00:00Z"


async def overlap_run(engine: bf.Engine, clock: FakeClock, policy: Overlap) -> list[str]:
    triggers = host(engine, long_job, every=60, overlap=policy)
    await triggers.check()
    actions = []
    for _ in range(3):
        await clock.advance(60)
        actions += [d["action"] for d in await triggers.check()]
        await engine.settle()
    return actions


async def finish(engine: bf.Engine, run: bf.RunRecord) -> None:
    await engine.send_event("done", "ok", key=json.loads(run.input_json)["scheduled_at"])
    await engine.settle()


@pytest.fixture
def t0() -> FakeClock:
    return FakeClock(at(2026, 6, 1, 8, 0, 30))


async def test_overlap_skip(make_engine: EngineFactory, t0: FakeClock) -> None:
    async with make_engine(clock=t0) as engine:
        assert await overlap_run(engine, t0, Overlap.SKIP) == ["start", "skipped", "skipped"]
        (first,) = await runs_of(engine, "long_job")
        await finish(engine, first)
        await t0.advance(60)
        triggers = host(engine, long_job, every=60, overlap=Overlap.SKIP)
        assert [d["action"] for d in await triggers.check()] == ["start"]


async def test_overlap_buffer_one(make_engine: EngineFactory, t0: FakeClock) -> None:
    async with make_engine(clock=t0) as engine:
        actions = await overlap_run(engine, t0, Overlap.BUFFER_ONE)
        assert actions == ["start", "buffered", "skipped"]
        (first,) = await runs_of(engine, "long_job")
        await finish(engine, first)
        triggers = host(engine, long_job, every=60, overlap=Overlap.BUFFER_ONE)
        done = await triggers.check()
        await engine.settle()
        runs = await runs_of(engine, "long_job")
    assert [(d["action"], d["at"]) for d in done] == [("start", "2026-06-01T08:02:00Z")]
    assert [r.id for r in runs] == [first.id, run_id_for("long_job@2026-06-01T08:02:00Z")]


async def test_overlap_allow_all(make_engine: EngineFactory, t0: FakeClock) -> None:
    async with make_engine(clock=t0) as engine:
        assert await overlap_run(engine, t0, Overlap.ALLOW_ALL) == ["start"] * 3
        runs = await runs_of(engine, "long_job")
    assert [r.status for r in runs] == [bf.RunStatus.WAITING] * 3


async def test_overlap_cancel_other(make_engine: EngineFactory, t0: FakeClock) -> None:
    async with make_engine(clock=t0) as engine:
        actions = await overlap_run(engine, t0, Overlap.CANCEL_OTHER)
        runs = await runs_of(engine, "long_job")
    assert actions == ["start", "cancel_and_start", "cancel_and_start"]
    statuses = [r.status for r in runs]
    assert statuses == [bf.RunStatus.CANCELLED, bf.RunStatus.CANCELLED, bf.RunStatus.WAITING]


# -- exactly once --------------------------------------------------------------------------------
class Flaky:
    """A target whose first start fails after the tick was decided (a process dying there)."""

    def __init__(self, inner: Target) -> None:
        self.inner, self.calls = inner, 0

    async def start(self, engine: bf.Engine, input: Any, run_id: str, key: str) -> str:
        self.calls += 1
        if self.calls == 1:
            raise OSError("connection reset while starting")
        return await self.inner.start(engine, input, run_id, key)


class Recorded:
    name = "recorded"

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    async def send(self, alert: Alert) -> None:
        self.alerts.append(alert)


async def test_a_start_cut_off_after_the_decision_runs_once_and_alerts(
    make_engine: EngineFactory, t0: FakeClock
) -> None:
    channel = Recorded()

    async def nothing() -> None:
        return None

    hook = AlertHook(lambda engine: ([channel], nothing))
    async with make_engine(clock=t0, hooks=[hook]) as engine:
        flaky = Flaky(workflow_target(report))
        trigger = ScheduleTrigger("report", ScheduleSpec(every=60), Target("report", flaky.start))
        triggers = TriggerHost(engine, [trigger])
        await triggers.check()
        await t0.advance(60)
        with pytest.raises(OSError, match="connection reset"):
            await triggers.check()
        assert (await triggers.status())[0]["state"] == "failing"
        assert await runs_of(engine, "report") == []
        await triggers.check()  # the next pass starts the decided run
        await triggers.check()
        await engine.settle()
        runs = await runs_of(engine, "report")
        status = (await triggers.status())[0]
    assert [r.id for r in runs] == [run_id_for("report@2026-06-01T08:01:00Z")]
    assert status["state"] == "active"
    assert status["last_success"] == "2026-06-01T08:01:30Z"
    assert [a.kind for a in channel.alerts] == ["trigger.failed"]
    assert "connection reset" in channel.alerts[0].summary


async def test_two_engines_start_one_run_per_tick(pg_url: str, t0: FakeClock) -> None:
    async with (
        bf.Engine(pg_url, clock=t0, workflows=[report]) as one,
        bf.Engine(pg_url, clock=t0, workflows=[report]) as two,
    ):
        hosts = [host(one, report, every=60), host(two, report, every=60)]
        await asyncio.gather(*(h.check() for h in hosts))
        decisions: list[dict[str, Any]] = []
        for _ in range(20):
            await t0.advance(60)
            for done in await asyncio.gather(*(h.check() for h in hosts)):
                decisions += done
            await asyncio.gather(one.settle(), two.settle())
        runs = await runs_of(one, "report")
    assert len(decisions) == 40  # each engine saw each tick...
    assert len({d["key"] for d in decisions}) == 20  # ...and followed one decision
    assert len(runs) == 20
    assert len({r.id for r in runs}) == 20
    assert all(r.status is bf.RunStatus.COMPLETED for r in runs)


# -- operators -----------------------------------------------------------------------------------
async def test_pause_resume_trigger_now_and_backfill(
    make_engine: EngineFactory, t0: FakeClock
) -> None:
    async with make_engine(clock=t0) as engine:
        store = engine.store
        triggers = host(engine, report, every=3600)
        await triggers.check()
        assert await pause(store, "report", by="ann", now=t0.now())
        assert not await pause(store, "report", by="ann", now=t0.now())
        await step_through(t0, engine, triggers, t0.now() + 2 * 3600, 3600)
        assert (await triggers.status())[0]["state"] == "paused"
        assert await runs_of(engine, "report") == []
        assert await resume(store, "report", by="ann", now=t0.now())
        assert not await resume(store, "report", by="ann", now=t0.now())
        await request_trigger(store, "report", by="ann", now=t0.now())
        nine, ten = at(2026, 6, 1, 9), at(2026, 6, 1, 10)
        await request_backfill(store, "report", start=nine, end=ten, by="ann", now=t0.now())
        await request_backfill(store, "report", start=nine, end=ten, by="bob", now=t0.now())
        done = await triggers.check()
        await engine.settle()
        runs = await runs_of(engine, "report")
        with pytest.raises(bf.ConfigError, match="in the future"):
            await request_backfill(store, "report", start=nine, end=t0.now() + 1, by="a",
                                   now=t0.now())  # fmt: skip
        kinds = {e.kind for e in await store.read_audit()}
    # paused ticks are decided again by the first backfill, followed by the second
    assert [d["action"] for d in done] == ["start"] * 5
    keys = sorted(d["key"] for d in done)
    assert keys[:4] == [
        "report@2026-06-01T09:00:00Z~backfill", "report@2026-06-01T09:00:00Z~backfill",
        "report@2026-06-01T10:00:00Z~backfill", "report@2026-06-01T10:00:00Z~backfill",
    ]  # fmt: skip
    assert keys[4].startswith("report@now:")
    assert len(runs) == 3
    assert {"trigger.paused", "trigger.resumed", "trigger.requested", "trigger.tick"} <= kinds


async def test_after_starts_the_next_run_once_the_previous_ended(
    make_engine: EngineFactory, t0: FakeClock
) -> None:
    async with make_engine(clock=t0) as engine:
        triggers = host(engine, long_job, after=300)
        assert [d["key"] for d in await triggers.check()] == ["long_job#1"]
        await engine.settle()
        await t0.advance(600)
        assert await triggers.check() == []  # still open
        (first,) = await runs_of(engine, "long_job")
        await finish(engine, first)
        await t0.advance(299)
        assert await triggers.check() == []
        await t0.advance(1)
        assert [d["key"] for d in await triggers.check()] == ["long_job#2"]


async def test_the_host_fires_by_itself_and_stops_cleanly(
    make_engine: EngineFactory, t0: FakeClock
) -> None:
    started = asyncio.Event()
    inner = workflow_target(report)

    async def start(engine: bf.Engine, input: Any, run_id: str, key: str) -> str:
        run = await inner.start(engine, input, run_id, key)
        started.set()
        return run

    async with make_engine(clock=t0) as engine:
        trigger = ScheduleTrigger("report", ScheduleSpec(every=60), Target("report", start),
                                  poll=30)  # fmt: skip
        async with TriggerHost(engine, [trigger]) as triggers:
            await wait_for(lambda: trigger.next_due(engine.store, t0.now()), t0)
            await t0.advance(30)
            await t0.advance(30)
            await asyncio.wait_for(started.wait(), 10)
        assert triggers._tasks == []
        assert len(await runs_of(engine, "report")) == 1


async def wait_for(due: Callable[[], Awaitable[float | None]], clock: FakeClock) -> None:
    """Until the host's first pass has set the schedule's cursor (it then sleeps on the clock)."""
    for _ in range(1000):
        if clock.sleepers and await due() is not None:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the trigger host never reached its sleep")


def test_two_triggers_with_one_name_are_refused(engine: bf.Engine) -> None:
    one: Sequence[ScheduleTrigger] = [
        ScheduleTrigger("x", ScheduleSpec(every=60), workflow_target(report))
    ] * 2
    with pytest.raises(bf.ConfigError, match="two triggers are named 'x'"):
        TriggerHost(engine, one)
