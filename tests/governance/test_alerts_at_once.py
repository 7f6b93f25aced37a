"""Issue #10: no failure passes in silence. The seed's failure (a CRM that times out past every
retry) faults the run and an alert reaches a real webhook receiver within a second of the last
attempt, raised by whichever process sees it: an embedded engine, `batonflow run`, a
`batonflow worker`; once, however many processes see it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

import batonflow as bf
from batonflow._net import make_client
from batonflow.configuration import Setup
from batonflow.dsl import load_document
from batonflow.governance import AlertHook, raise_alert
from batonflow.governance._alert_config import AlertSettings
from batonflow.governance._alerts import AlertMonitor
from batonflow.testing import FakeClock

from . import crm_flows
from .receivers import HangingCrm, Receiver, hanging_crm, receiver

FLOWS = Path(crm_flows.__file__)
BIN = Path(sys.executable).parent / "batonflow"
ENQUIRY = {"from": "ann@example.test", "subject": "Damaged order"}
#: The retry waits of crm_flows.RETRY between its three attempts.
WAITS = (0.1, 0.2)


@pytest.fixture
def crm() -> Iterator[HangingCrm]:
    with hanging_crm() as server:
        yield server


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    with receiver() as server:
        yield server


def config(hook_url: str, **alerts: Any) -> dict[str, Any]:
    return {
        "governance": {
            "egress": {"allow": ["127.0.0.1"]},
            "alerts": {"webhooks": [{"url": hook_url}], **alerts},
        }
    }


def toml(data: dict[str, Any]) -> str:
    """The little TOML these tests need (tables of strings, numbers and string lists)."""
    lines: list[str] = []
    alerts = data["governance"]["alerts"]
    lines += ["[governance.egress]", 'allow = ["127.0.0.1"]', "[governance.alerts]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in alerts.items() if k != "webhooks"]
    for hook in alerts["webhooks"]:
        lines += ["[[governance.alerts.webhooks]]", f"url = {json.dumps(hook['url'])}"]
    return "\n".join(lines) + "\n"


class Retries(bf.Hook):
    """What the engine tells hooks of failed attempts that will be tried again."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def attempt_failed(self, event: bf.FailedAttempt) -> None:
        if event.retry_at is not None:
            self.seen.append((event.step, event.attempt))


@asynccontextmanager
async def engine_on(
    setup: Setup, db: str, clock: FakeClock, *hooks: bf.Hook
) -> AsyncIterator[tuple[bf.Engine, Any]]:
    async with (
        setup.session(db, clock=clock) as session,
        session.engine([crm_flows.enquiry], clock=clock, hooks=hooks) as engine,
    ):
        yield engine, session


async def drive_attempts(engine: bf.Engine, clock: FakeClock, crm: HangingCrm) -> float:
    """Let the run make its three attempts, each timing out on the fake clock; return the fake
    time at which the last one ended."""
    for attempt in range(3):
        assert await asyncio.to_thread(crm.requested.wait, 20), f"attempt {attempt + 1}"
        crm.requested.clear()
        await clock.advance(crm_flows.ATTEMPT_TIMEOUT)  # the attempt times out
        last = clock.now()
        await engine.settle()  # parked until its retry, or faulted
        if attempt < len(WAITS):
            await clock.advance(WAITS[attempt])
            engine.poke()
    return last


def event_time(event: dict[str, Any]) -> float:
    from datetime import datetime

    return datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()


# -- embedded engine, fake clock ------------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["python", "dsl"])
async def test_a_crm_that_times_out_past_every_retry_alerts_at_once(
    store_url: str, clock: FakeClock, crm: HangingCrm, hooks: Receiver, flavour: str
) -> None:
    setup = Setup("<test>", config(hooks.url, step_failures=2))
    retries = Retries()
    async with engine_on(setup, store_url, clock, retries) as (engine, session):
        data = {"crm": crm.url, "enquiry": ENQUIRY}
        if flavour == "python":
            handle = await engine.start(crm_flows.enquiry, data)
        else:
            document = load_document_text(crm_flows.DOCUMENT)
            handle = await session.runtime.start(engine, document, data)
        last_attempt = await drive_attempts(engine, clock, crm)
        record = await handle.record()
        assert record.status is bf.RunStatus.FAULTED
        (faulted,) = await asyncio.to_thread(hooks.wait_for, "run.faulted")
    # within a second of the last attempt, on the engine's clock and in real time
    assert event_time(faulted) - last_attempt <= 1.0
    assert hooks.arrival(faulted) - crm.requests[-1] <= 1.0 + 0.5  # + the real wait for it
    assert faulted["subject"] == handle.run_id
    assert faulted["data"]["details"]["status"] == "faulted"
    # the step that kept failing was reported while it was still retrying, after 2 failures
    (retrying,) = hooks.of("step.retrying")
    assert retrying["data"]["details"]["attempts"] == 2
    assert hooks.events.index(retrying) < hooks.events.index(faulted)
    # each failure that is tried again is told once, though later activations replay it
    step = "log_enquiry" if flavour == "python" else "/do/0/logEnquiry"
    assert retries.seen == [(step, 1), (step, 2)]
    # one alert of each, recorded with its delivery
    assert len(hooks.of("run.faulted")) == 1
    store = bf.open_store(store_url)
    await store.open()
    try:
        record_json = await store.get_record("alert", faulted["id"])
    finally:
        await store.close()
    assert record_json is not None
    assert json.loads(record_json)["state"] == "sent"


def load_document_text(text: str) -> dict[str, Any]:
    document: dict[str, Any] = load_document("crm_flows.yaml", text=text).raw
    return document


async def test_delivery_never_holds_up_a_run_and_a_dead_channel_is_recorded(
    db_path: Path, clock: FakeClock
) -> None:
    """The webhook is down (connection refused): the run ends at once all the same; delivery
    is retried on the clock in the background, then recorded as failed."""
    setup = Setup("<test>", config("http://127.0.0.1:9/hooks"))

    @bf.workflow(name="breaks")
    async def breaks(ctx: bf.Context) -> None:
        raise RuntimeError("the CRM said no")

    async with (
        setup.session(str(db_path), clock=clock) as session,
        session.engine([breaks], clock=clock) as engine,
    ):
        handle = await engine.start(breaks)
        await engine.settle()
        assert await handle.status() is bf.RunStatus.FAULTED
        (hook,) = [h for h in engine.hooks.all if isinstance(h, AlertHook)]
        key = f"run.faulted:{handle.run_id}:{(await handle.record()).finished_at:.3f}"
        delivering = set(hook._tasks)
        assert delivering  # the run ended while its alert is still being delivered
        while not all(task.done() for task in delivering):  # the backoff, on the clock
            await asyncio.wait(delivering, timeout=0.01)  # real network I/O happens
            due = clock.next_deadline()
            if due is not None:
                await clock.advance(due - clock.now())
        record = json.loads(await engine.store.get_record("alert", key) or "{}")
    assert record["state"] == "failed"
    (delivery,) = record["deliveries"]
    assert (delivery["ok"], delivery["attempts"]) == (False, 4)


async def test_two_processes_seeing_one_fault_raise_one_alert(
    store_url: str, clock: FakeClock, hooks: Receiver
) -> None:
    """An engine that sees a run fault, and another process's monitor (its own store on the
    same database) that finds it at the same instant: the store's insert-if-absent lets one
    of them raise it."""
    setup = Setup("<test>", config(hooks.url))
    settings = AlertSettings.parse(config(hooks.url)["governance"]["alerts"], "<test>")

    @bf.workflow(name="breaks")
    async def breaks(ctx: bf.Context) -> None:
        raise RuntimeError("the CRM said no")

    other = bf.open_store(store_url)
    async with (
        setup.session(store_url, clock=clock) as session,
        _client() as client,
        session.engine([breaks], clock=clock) as engine,
    ):
        await other.open()
        try:
            monitor = AlertMonitor(other, clock, settings.channels(client))
            handle = await engine.start(breaks)
            await engine.settle()  # the fault is recorded; the hook is raising it now
            raised = await monitor.check()  # and the monitor finds it at the same time
            (hook,) = [h for h in engine.hooks.all if isinstance(h, AlertHook)]
            await asyncio.gather(*hook._tasks)
        finally:
            await other.close()
    (event,) = hooks.of("run.faulted")  # every delivery has been made: one of them
    assert event["subject"] == handle.run_id
    assert len(raised) <= 1


async def test_a_trigger_failure_is_raised_through_the_public_entry_point(
    db_path: Path, clock: FakeClock, hooks: Receiver
) -> None:
    setup = Setup("<test>", config(hooks.url))
    async with (
        setup.session(str(db_path), clock=clock) as session,
        session.engine(clock=clock) as engine,
    ):
        alert = {
            "kind": "trigger.failed",
            "summary": "mailbox intake: IMAP login refused",
            "key": "trigger.failed:mailbox:2026-12-07T09:00",
            "details": {"trigger": "mailbox"},
        }
        assert await raise_alert(engine, **alert) is True
        assert await raise_alert(engine, **alert) is False  # the same occurrence
        with pytest.raises(bf.ConfigError, match="expected one of"):
            await raise_alert(engine, kind="oops", summary="x", key="y")  # type: ignore[arg-type]
    (event,) = hooks.events
    assert event["type"] == "batonflow.alert.trigger.failed"
    assert "subject" not in event  # no run
    assert event["data"]["details"] == {"trigger": "mailbox"}


async def test_without_alerts_configured_raise_alert_says_so(
    db_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with bf.Engine(str(db_path), clock=clock) as engine:
        assert not await raise_alert(engine, kind="trigger.failed", summary="s", key="k")
    assert "no alert channels configured" in caplog.text


# -- deadlines and approvals: a precise wake-up, no poll ----------------------------------------


async def test_a_deadline_is_alerted_at_the_moment_it_passes(
    db_path: Path, clock: FakeClock, hooks: Receiver
) -> None:
    setup = Setup("<test>", config(hooks.url, deadlines={"waits": "PT4H"}))

    @bf.workflow(name="waits")
    async def waits(ctx: bf.Context) -> Any:
        return await ctx.wait_for_event("never")

    async with (
        setup.session(str(db_path), clock=clock) as session,
        session.engine([waits], clock=clock) as engine,
    ):
        handle = await engine.start(waits)
        await engine.settle()
        await clock.advance(4 * 3600 - 1)
        assert hooks.events == []
        await clock.advance(1)
        (overdue,) = await asyncio.to_thread(hooks.wait_for, "run.overdue")
    assert overdue["subject"] == handle.run_id
    assert event_time(overdue) == clock.now()


async def test_a_run_that_ends_in_time_is_never_called_overdue(
    db_path: Path, clock: FakeClock, hooks: Receiver
) -> None:
    setup = Setup("<test>", config(hooks.url, deadlines={"waits": "PT4H"}))

    @bf.workflow(name="waits")
    async def waits(ctx: bf.Context) -> Any:
        return await ctx.wait_for_event("answer")

    async with (
        setup.session(str(db_path), clock=clock) as session,
        session.engine([waits], clock=clock) as engine,
    ):
        handle = await engine.start(waits)
        await engine.settle()
        await clock.advance(3600)
        await engine.send_event("answer", {"ok": True}, run_id=handle.run_id)
        await engine.settle()
        assert await handle.status() is bf.RunStatus.COMPLETED
        await clock.advance(4 * 3600)
        (hook,) = [h for h in engine.hooks.all if isinstance(h, AlertHook)]
        await asyncio.gather(*hook._tasks)
    assert hooks.events == []


async def test_an_approval_nearing_expiry_and_expiring_alerts_and_keeps_waiting(
    db_path: Path, clock: FakeClock, hooks: Receiver
) -> None:
    from batonflow.catalog import approval

    setup = Setup("<test>", config(hooks.url, expiring_within="PT30M"))

    @bf.workflow(name="complaint")
    async def complaint(ctx: bf.Context) -> Any:
        return await approval(
            ctx, title="Uphold the complaint?", approvers={"groups": ["client-care"]},
            expires_in="PT2H",
        )  # fmt: skip

    async with (
        setup.session(str(db_path), clock=clock) as session,
        session.engine([complaint], clock=clock) as engine,
    ):
        handle = await engine.start(complaint)
        await engine.settle()
        await clock.advance(90 * 60)
        (expiring,) = await asyncio.to_thread(hooks.wait_for, "approval.expiring")
        assert event_time(expiring) == clock.now()
        await clock.advance(30 * 60)
        await engine.settle()
        (expired,) = await asyncio.to_thread(hooks.wait_for, "approval.expired")
        assert await handle.status() is bf.RunStatus.WAITING  # nobody decided: it waits
        # the next round warns again before it expires
        await clock.advance(90 * 60)
        await asyncio.to_thread(hooks.wait_for, "approval.expiring", 2)
    assert "asked group client-care again" in expired["data"]["summary"]
    assert expired["data"]["details"]["round"] == 1


# -- other processes: `batonflow run` and `batonflow worker` --------------------------------------


def cli_env(tmp_path: Path, hook_url: str) -> dict[str, str]:
    path = tmp_path / "batonflow.toml"
    path.write_text(toml(config(hook_url, step_failures=2)))
    env = {**os.environ, "BATONFLOW_CONFIG": str(path), "BATONFLOW_DB": str(tmp_path / "x.db")}
    env.pop("BATONFLOW_TOKEN", None)
    return env


def workflow_ref(tmp_path: Path, flavour: str) -> str:
    if flavour == "python":
        return f"{FLOWS}:enquiry"
    document = tmp_path / "enquiry.yaml"
    document.write_text(crm_flows.DOCUMENT)
    return str(document)


@pytest.mark.slow
@pytest.mark.parametrize("flavour", ["python", "dsl"])
def test_batonflow_run_alerts_before_it_exits(
    tmp_path: Path, crm: HangingCrm, hooks: Receiver, flavour: str
) -> None:
    env = cli_env(tmp_path, hooks.url)
    data = json.dumps({"crm": crm.url, "enquiry": ENQUIRY})
    result = subprocess.run(
        [str(BIN), "run", workflow_ref(tmp_path, flavour), "--input", data, "--json"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=50, check=False,
    )  # fmt: skip
    assert json.loads(result.stdout)["status"] == "faulted", result.stderr
    (faulted,) = hooks.of("run.faulted")  # delivered before the command returned
    assert len(crm.requests) == 3
    assert hooks.arrival(faulted) - crm.requests[-1] <= 1.0 + crm_flows.ATTEMPT_TIMEOUT
    assert len(hooks.of("step.retrying")) == 1


@pytest.mark.slow
@pytest.mark.parametrize("flavour", ["python", "dsl"])
async def test_a_worker_alerts_at_once_and_its_monitor_raises_nothing_twice(
    tmp_path: Path, crm: HangingCrm, hooks: Receiver, flavour: str
) -> None:
    env = cli_env(tmp_path, hooks.url)
    worker = await asyncio.create_subprocess_exec(
        str(BIN), "worker", env=env, cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        data = json.dumps({"crm": crm.url, "enquiry": ENQUIRY})
        submitted = await asyncio.to_thread(
            subprocess.run,
            [str(BIN), "run", workflow_ref(tmp_path, flavour), "--input", data, "--detach"],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=30, check=True,
        )  # fmt: skip
        run_id = submitted.stdout.strip()
        (faulted,) = await asyncio.to_thread(hooks.wait_for, "run.faulted")
        assert faulted["subject"] == run_id
        assert hooks.arrival(faulted) - crm.requests[-1] <= 1.0 + crm_flows.ATTEMPT_TIMEOUT
        # a second process (this one) looks at the same fault: the record says it is raised
        settings = AlertSettings.parse(config(hooks.url)["governance"]["alerts"], "<test>")
        store = bf.open_store(env["BATONFLOW_DB"])
        await store.open()
        try:
            async with _client() as client:
                monitor = AlertMonitor(store, bf.SystemClock(), settings.channels(client))
                assert await monitor.check() == []
        finally:
            await store.close()
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(worker.communicate(), 30)
    assert worker.returncode == 0, err.decode()
    assert len(hooks.of("run.faulted")) == 1


def _client() -> httpx.AsyncClient:
    return make_client()
