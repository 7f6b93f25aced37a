"""The contract every Store must keep, as tests any store's test module can inherit.

    class TestMyStore(StoreConformance):
        @pytest.fixture
        async def store(self, tmp_path):
            store = MyStore(...)
            await store.open()
            yield store
            await store.close()

The fixture yields an open, empty store. The tests use only the Store protocol.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from batonflow.errors import ConfigError, InvalidTransition, LeaseLost, RunNotFound
from batonflow.store import (
    AttemptRecord,
    AuditEntry,
    NewRun,
    RunStatus,
    StepKind,
    StepRecord,
    StepStatus,
    Store,
)
from batonflow.store._audit import GENESIS, verify_records

T0 = 1_000_000.0
ME, OTHER = "engine-a", "engine-b"


@contextmanager
def _raises(kind: type[BaseException]) -> Iterator[None]:
    try:
        yield
    except kind:
        return
    raise AssertionError(f"expected {kind.__name__}")


def _new(run_id: str, *, running: bool = False, **fields: Any) -> NewRun:
    base: dict[str, Any] = {
        "id": run_id,
        "workflow": "wf",
        "workflow_ref": "mod:wf",
        "input_json": "{}",
        "status": RunStatus.RUNNING if running else RunStatus.PENDING,
        "owner": ME if running else None,
        "lease_until": T0 + 30 if running else None,
        "created_at": T0,
    }
    base.update(fields)
    return NewRun(**base)


def _step(
    run_id: str, step_id: str, status: StepStatus = StepStatus.COMPLETED, **f: Any
) -> StepRecord:
    return StepRecord(
        run_id, step_id, f.pop("kind", StepKind.STEP), f.pop("name", "s"), status, **f
    )


def _event_wait(run_id: str, step_id: str, topic: str, key: str | None = None) -> StepRecord:
    return _step(
        run_id, step_id, StepStatus.PENDING, kind=StepKind.EVENT, name=topic, topic=topic, key=key
    )


class StoreConformance:
    """Inherit in a test class that provides an async ``store`` fixture."""

    # -- runs -------------------------------------------------------------------------------
    async def test_create_and_read_back(self, store: Store) -> None:
        record, created = await store.create_run(_new("r1", idempotency_key="k1"))
        assert created
        assert record.status is RunStatus.PENDING
        assert (record.workflow, record.input_json, record.idempotency_key) == ("wf", "{}", "k1")
        assert await store.get_run("r1") == record
        assert await store.get_run("missing") is None

    async def test_idempotency_key_returns_the_first_run(self, store: Store) -> None:
        first, _ = await store.create_run(_new("r1", idempotency_key="same"))
        again, created = await store.create_run(_new("r2", idempotency_key="same"))
        assert not created
        assert again.id == first.id
        assert await store.get_run("r2") is None
        _, created_by_id = await store.create_run(_new("r1"))
        assert not created_by_id

    async def test_list_runs_newest_first_with_filters(self, store: Store) -> None:
        for i in range(5):
            await store.create_run(_new(f"r{i}", created_at=T0 + i, workflow=f"w{i % 2}"))
        assert [r.id for r in await store.list_runs()] == ["r4", "r3", "r2", "r1", "r0"]
        assert [r.id for r in await store.list_runs(workflow="w1")] == ["r3", "r1"]
        assert [r.id for r in await store.list_runs(limit=2)] == ["r4", "r3"]
        assert await store.list_runs(status=RunStatus.COMPLETED) == []

    async def test_list_runs_pages_by_cursor_time_and_text(self, store: Store) -> None:
        for i in range(5):
            await store.create_run(_new(f"r{i}", created_at=T0 + i // 2, workflow=f"w{i % 2}"))
        first = await store.list_runs(limit=2)
        last = first[-1]
        rest = await store.list_runs(limit=10, before=(last.created_at, last.id))
        assert [r.id for r in first + rest] == ["r4", "r3", "r2", "r1", "r0"]
        assert [r.id for r in await store.list_runs(since=T0 + 1, until=T0 + 2)] == ["r3", "r2"]
        assert [r.id for r in await store.list_runs(text="W1")] == ["r3", "r1"]
        assert await store.list_runs(text="%") == []  # a literal, not a wildcard
        counts = await store.count_runs(since=T0 + 1)
        assert counts == {RunStatus.PENDING: 3}
        assert await store.count_runs(text="nothing") == {}

    async def test_child_run_and_parent_step_are_created_together(self, store: Store) -> None:
        await store.create_run(_new("p", running=True))
        pending = _step("p", "1", StepStatus.PENDING, kind=StepKind.CHILD, child_id="p.1")
        child, _ = await store.create_run(_new("p.1", parent_id="p", parent_step="1"), pending)
        assert child.parent_id == "p"
        steps = await store.load_steps("p")
        assert [(s.step_id, s.status, s.child_id) for s in steps] == [
            ("1", StepStatus.PENDING, "p.1")
        ]
        assert [r.id for r in await store.list_runs(parent_id="p")] == ["p.1"]

    # -- claiming and leases ----------------------------------------------------------------
    async def test_claim_takes_pending_runs_once(self, store: Store) -> None:
        for i in range(4):
            await store.create_run(_new(f"r{i}", created_at=T0 + i))
        a, b = await asyncio.gather(
            store.claim_runs(ME, T0, T0 + 30, 3), store.claim_runs(OTHER, T0, T0 + 30, 3)
        )
        ids_a, ids_b = {r.id for r in a}, {r.id for r in b}
        assert not ids_a & ids_b
        assert ids_a | ids_b == {"r0", "r1", "r2", "r3"}
        for run in a:
            assert (run.status, run.owner, run.lease_until) == (RunStatus.RUNNING, ME, T0 + 30)
        assert await store.claim_runs(ME, T0, T0 + 30, 10) == []

    async def test_claim_waits_for_wake_time_and_expired_leases(self, store: Store) -> None:
        await store.create_run(_new("sleeper", running=True))
        await store.suspend_run("sleeper", ME, T0 + 100, 0, [], [], T0)
        await store.create_run(_new("held", running=True, owner=OTHER, lease_until=T0 + 30))
        assert await store.claim_runs(ME, T0 + 10, T0 + 40, 10) == []
        assert [r.id for r in await store.claim_runs(ME, T0 + 31, T0 + 61, 10)] == ["held"]
        assert [r.id for r in await store.claim_runs(ME, T0 + 100, T0 + 130, 10)] == ["sleeper"]

    async def test_claim_leaves_own_expired_leases_alone(self, store: Store) -> None:
        await store.create_run(_new("mine", running=True))
        assert await store.claim_runs(ME, T0 + 60, T0 + 90, 10) == []

    async def test_renew_reports_runs_no_longer_held(self, store: Store) -> None:
        await store.create_run(_new("a", running=True))
        await store.create_run(_new("b", running=True))
        await store.transition("b", RunStatus.CANCELLED, T0)
        assert await store.renew_leases(ME, ["a", "b"], T0 + 60) == {"b"}
        record = await store.get_run("a")
        assert record is not None
        assert record.lease_until == T0 + 60

    async def test_release_hands_runs_back(self, store: Store) -> None:
        await store.create_run(_new("a", running=True))
        await store.release_run("a", ME, T0)
        record = await store.get_run("a")
        assert record is not None
        assert (record.status, record.owner) == (RunStatus.PENDING, None)

    # -- the journal --------------------------------------------------------------------------
    async def test_steps_are_saved_in_natural_order_and_upserted(self, store: Store) -> None:
        await store.create_run(_new("r", running=True))
        ids = ["10", "2", "3.1.1", "3", "3.0.2", "9"]
        await store.save_steps("r", ME, [_step("r", i) for i in ids], [], T0)
        loaded = [s.step_id for s in await store.load_steps("r")]
        assert loaded == ["2", "3", "3.0.2", "3.1.1", "9", "10"]
        await store.save_steps("r", ME, [_step("r", "2", output_json='"new"')], [], T0)
        assert (await store.load_steps("r"))[0].output_json == '"new"'

    async def test_attempts_are_appended(self, store: Store) -> None:
        await store.create_run(_new("r", running=True))
        for n in (1, 2):
            attempt = AttemptRecord("r", "1", n, T0, T0 + 1, json.dumps({"message": f"boom{n}"}))
            await store.save_steps("r", ME, [], [attempt], T0)
        assert [a.attempt for a in await store.load_attempts("r")] == [1, 2]

    async def test_writes_need_the_lease(self, store: Store) -> None:
        await store.create_run(_new("r", running=True))
        with _raises(LeaseLost):
            await store.save_steps("r", OTHER, [_step("r", "1")], [], T0)
        assert await store.load_steps("r") == []
        await store.transition("r", RunStatus.CANCELLED, T0)
        with _raises(LeaseLost):
            await store.save_steps("r", ME, [_step("r", "1")], [], T0)
        with _raises(LeaseLost):
            await store.finish_run("r", ME, RunStatus.COMPLETED, "1", None, [], [], T0)

    # -- parking and waking -----------------------------------------------------------------
    async def test_suspend_parks_the_run(self, store: Store) -> None:
        record, _ = await store.create_run(_new("r", running=True))
        sleep = _step("r", "1", StepStatus.PENDING, kind=StepKind.SLEEP, wake_at=T0 + 5)
        status = await store.suspend_run("r", ME, T0 + 5, record.signal, [sleep], [], T0)
        assert status is RunStatus.WAITING
        parked = await store.get_run("r")
        assert parked is not None
        assert (parked.status, parked.wake_at, parked.owner) == (RunStatus.WAITING, T0 + 5, None)
        assert await store.next_wake_at() == T0 + 5
        assert (await store.load_steps("r"))[0].wake_at == T0 + 5

    async def test_news_during_an_activation_is_not_lost(self, store: Store) -> None:
        record, _ = await store.create_run(_new("r", running=True))
        await store.begin_wait(_event_wait("r", "1", "go"), ME, T0)
        await store.deliver_event("go", '"now"', T0, run_id="r")  # arrives before parking
        status = await store.suspend_run("r", ME, None, record.signal, [], [], T0)
        assert status is RunStatus.PENDING

    async def test_event_sent_before_the_wait_is_kept(self, store: Store) -> None:
        await store.create_run(_new("r", running=True))
        await store.deliver_event("go", '{"n":1}', T0, run_id="r")
        await store.deliver_event("go", '{"n":2}', T0, run_id="r")
        first = await store.begin_wait(_event_wait("r", "1", "go"), ME, T0)
        second = await store.begin_wait(_event_wait("r", "2", "go"), ME, T0)
        assert (first.status, first.output_json) == (StepStatus.COMPLETED, '{"n":1}')
        assert second.output_json == '{"n":2}'
        third = await store.begin_wait(_event_wait("r", "3", "go"), ME, T0)
        assert third.status is StepStatus.PENDING

    async def test_events_match_topic_run_and_key(self, store: Store) -> None:
        await store.create_run(_new("a", running=True))
        await store.create_run(_new("b", running=True, owner=ME))
        await store.deliver_event("go", '"for-b"', T0, run_id="b")
        await store.deliver_event("other", '"x"', T0, run_id="a")
        await store.deliver_event("paid", '"inv-2"', T0, key="INV-2")
        await store.deliver_event("paid", '"inv-1"', T0, key="INV-1")
        assert (await store.begin_wait(_event_wait("a", "1", "go"), ME, T0)).output_json is None
        keyed = await store.begin_wait(_event_wait("a", "2", "paid", key="INV-1"), ME, T0)
        assert keyed.output_json == '"inv-1"'
        events = await store.list_events(run_id="a")
        assert [e.payload_json for e in events] == ['"x"', '"inv-1"']
        assert events[1].consumed_step == "2"

    async def test_a_delivered_event_wakes_its_waiter(self, store: Store) -> None:
        record, _ = await store.create_run(_new("r", running=True))
        await store.begin_wait(_event_wait("r", "1", "paid", key="K"), ME, T0)
        await store.suspend_run("r", ME, None, record.signal, [], [], T0)
        await store.deliver_event("paid", '"x"', T0 + 1, key="K")
        woken = await store.get_run("r")
        assert woken is not None
        assert woken.status is RunStatus.PENDING
        with _raises(RunNotFound):
            await store.deliver_event("paid", '"x"', T0, run_id="nobody")
        with _raises(ConfigError):
            await store.deliver_event("paid", '"x"', T0)

    # -- ending -------------------------------------------------------------------------------
    async def test_finish_settles_the_parent_and_wakes_it(self, store: Store) -> None:
        parent, _ = await store.create_run(_new("p", running=True))
        pending = _step("p", "1", StepStatus.PENDING, kind=StepKind.CHILD, child_id="p.1")
        await store.create_run(_new("p.1", running=True, parent_id="p", parent_step="1"), pending)
        await store.suspend_run("p", ME, None, parent.signal, [], [], T0)
        await store.finish_run("p.1", ME, RunStatus.COMPLETED, '"done"', None, [], [], T0 + 1)
        step = (await store.load_steps("p"))[0]
        assert (step.status, step.output_json) == (StepStatus.COMPLETED, '"done"')
        woken = await store.get_run("p")
        assert woken is not None
        assert woken.status is RunStatus.PENDING

    async def test_a_failed_child_fails_the_parent_step(self, store: Store) -> None:
        await store.create_run(_new("p", running=True))
        pending = _step("p", "1", StepStatus.PENDING, kind=StepKind.CHILD, child_id="p.1")
        await store.create_run(_new("p.1", running=True, parent_id="p", parent_step="1"), pending)
        error = json.dumps({"type": "builtins:ValueError", "message": "bad"})
        await store.finish_run("p.1", ME, RunStatus.FAULTED, None, error, [], [], T0)
        step = (await store.load_steps("p"))[0]
        assert step.status is StepStatus.FAILED
        recorded = json.loads(step.error_json or "{}")
        assert recorded["type"] == "batonflow.errors:ChildWorkflowFailed"
        assert recorded["cause"]["message"] == "bad"

    async def test_ending_a_run_cancels_its_descendants(self, store: Store) -> None:
        await store.create_run(_new("p", running=True))
        await store.create_run(_new("p.1", parent_id="p", parent_step="1"))
        await store.create_run(_new("p.1.1", parent_id="p.1", parent_step="1"))
        await store.finish_run("p", ME, RunStatus.FAULTED, None, "{}", [], [], T0)
        for run_id in ("p.1", "p.1.1"):
            record = await store.get_run(run_id)
            assert record is not None
            assert record.status is RunStatus.CANCELLED

    # -- operator transitions -----------------------------------------------------------------
    async def test_transitions_follow_the_table(self, store: Store) -> None:
        await store.create_run(_new("r"))
        suspended = await store.transition("r", RunStatus.SUSPENDED, T0)
        assert suspended.status is RunStatus.SUSPENDED
        assert (await store.transition("r", RunStatus.PENDING, T0)).status is RunStatus.PENDING
        cancelled = await store.transition("r", RunStatus.CANCELLED, T0, '{"message":"x"}')
        assert (cancelled.status, cancelled.finished_at) == (RunStatus.CANCELLED, T0)
        with _raises(InvalidTransition):
            await store.transition("r", RunStatus.PENDING, T0)
        with _raises(RunNotFound):
            await store.transition("nobody", RunStatus.CANCELLED, T0)

    async def test_resuming_a_faulted_run_reopens_its_failed_step(self, store: Store) -> None:
        await store.create_run(_new("r", running=True))
        failed = _step("r", "2", StepStatus.FAILED, attempts=3, error_json='{"message":"x"}')
        error = json.dumps({"type": "builtins:ValueError", "message": "x", "step": "2"})
        await store.finish_run("r", ME, RunStatus.FAULTED, None, error, [failed], [], T0)
        resumed = await store.transition("r", RunStatus.PENDING, T0 + 1)
        assert (resumed.status, resumed.error_json) == (RunStatus.PENDING, None)
        step = (await store.load_steps("r"))[0]
        assert (step.status, step.attempts) == (StepStatus.PENDING, 0)

    async def test_resume_only_continues_suspended_or_faulted_runs(self, store: Store) -> None:
        await store.create_run(_new("busy", running=True))
        record, _ = await store.create_run(_new("parked", running=True))
        await store.suspend_run("parked", ME, T0 + 60, record.signal, [], [], T0)
        for run_id in ("busy", "parked"):  # running elsewhere, or waiting on its own timer
            with _raises(InvalidTransition):
                await store.transition(run_id, RunStatus.PENDING, T0)
        busy = await store.get_run("busy")
        assert busy is not None
        assert (busy.status, busy.owner) == (RunStatus.RUNNING, ME)
        with _raises(InvalidTransition):
            await store.transition("busy", RunStatus.COMPLETED, T0)

    async def test_events_for_ended_runs_are_refused(self, store: Store) -> None:
        await store.create_run(_new("done", running=True))
        await store.finish_run("done", ME, RunStatus.COMPLETED, "1", None, [], [], T0)
        with _raises(InvalidTransition):
            await store.deliver_event("go", "1", T0, run_id="done")
        assert await store.list_events() == []

    async def test_waits_can_be_listed_by_topic(self, store: Store) -> None:
        await store.create_run(_new("a", running=True))
        await store.create_run(_new("b", running=True))
        await store.begin_wait(
            replace(_event_wait("a", "1", "ce"), input_json='{"type":"x"}'), ME, T0
        )
        await store.begin_wait(_event_wait("b", "1", "ce", key="k"), ME, T0 + 1)
        await store.begin_wait(_event_wait("b", "2", "other"), ME, T0 + 2)
        waits = await store.list_waits("ce")
        assert [(w.run_id, w.step_id, w.input_json) for w in waits] == [
            ("a", "1", '{"type":"x"}'),
            ("b", "1", None),
        ]
        await store.deliver_event("ce", "1", T0, run_id="a")
        await store.begin_wait(_event_wait("a", "1", "ce"), ME, T0)  # consumes it
        assert [w.run_id for w in await store.list_waits("ce")] == ["b"]

    # -- audit trail and records ---------------------------------------------------------------
    async def test_state_changes_are_audited_in_a_chain(self, store: Store) -> None:
        await store.create_run(_new("r1", running=True, started_by="ann"))
        await store.save_steps(
            "r1", ME, [_step("r1", "1", output_json='{"x":1}')], [], T0 + 1,
            audit=[AuditEntry("model.call", '{"tokens":3}', "r1", "1", "engine")],
        )  # fmt: skip
        await store.suspend_run("r1", ME, T0 + 50, 0, [_step("r1", "2", StepStatus.PENDING,
                                kind=StepKind.SLEEP, wake_at=T0 + 50)], [], T0 + 2)  # fmt: skip
        await store.transition("r1", RunStatus.CANCELLED, T0 + 3, actor="bob")
        await store.deliver_event("t", "{}", T0 + 4, key="k", actor="hook")
        trail = await store.read_audit()
        kinds = [r.kind for r in trail]
        assert kinds == [
            "run.created", "step.completed", "model.call", "step.sleeping", "run.parked",
            "run.cancelled", "event.received",
        ]  # fmt: skip
        assert trail[0].actor == "ann"
        assert json.loads(trail[1].data_json)["output"] == {"x": 1}
        assert trail[5].actor == "bob"
        assert trail[6].actor == "hook"
        assert [r.seq for r in trail] == list(range(1, 8))
        checked, _, problem = verify_records(trail, start=(0, GENESIS))
        assert (checked, problem) == (7, None)
        assert [r.seq for r in await store.read_audit(run_id="r1", after=1)] == [2, 3, 4, 5, 6]

    async def test_audit_pages_and_plain_appends(self, store: Store) -> None:
        await store.append_audit([AuditEntry(f"k{i}", actor="x") for i in range(5)], T0)
        await store.append_audit([AuditEntry("k5")], T0 + 1)
        page = await store.read_audit(after=2, limit=2)
        assert [r.seq for r in page] == [3, 4]
        assert page[0].prev_hash == (await store.read_audit(after=1, limit=1))[0].hash
        checked, _, problem = verify_records(await store.read_audit(), start=(0, GENESIS))
        assert (checked, problem) == (6, None)

    async def test_records_are_set_listed_and_deleted_with_their_audit(self, store: Store) -> None:
        await store.put_record("identity", "b", '{"n":2}', T0, audit=[AuditEntry("id.created")])
        await store.put_record("identity", "a", '{"n":1}', T0)
        await store.put_record("identity", "a", '{"n":3}', T0 + 1)
        await store.put_record("token", "a", "{}", T0)
        assert await store.get_record("identity", "a") == '{"n":3}'
        assert await store.list_records("identity") == [("a", '{"n":3}'), ("b", '{"n":2}')]
        await store.put_record("identity", "a", None, T0 + 2, audit=[AuditEntry("id.deleted")])
        assert await store.get_record("identity", "a") is None
        assert [r.kind for r in await store.read_audit()] == ["id.created", "id.deleted"]

    async def test_runs_are_found_by_subject_and_deleted_when_ended(self, store: Store) -> None:
        # subjects as a sealed store hands them on: keyed references ("s:" + 64 hex digits)
        a, b = "s:" + "a" * 64, "s:" + "b" * 64
        await store.create_run(_new("r1", running=True, subjects=(a, b)))
        await store.create_run(_new("r2", subjects=(b,)))
        await store.create_run(_new("r3"))
        assert {r.id for r in await store.list_runs(subject=b)} == {"r1", "r2"}
        assert [r.id for r in await store.list_runs(subject=a)] == ["r1"]
        assert (await store.get_run("r1")).subjects == (a, b)  # type: ignore[union-attr]
        created = [r for r in await store.read_audit(run_id="r1") if r.kind == "run.created"]
        assert [r.subjects for r in created] == [(a, b)]
        with _raises(InvalidTransition):
            await store.delete_run("r1", T0)
        await store.finish_run("r1", ME, RunStatus.COMPLETED, "{}", None,
                               [_step("r1", "1")], [], T0 + 1)  # fmt: skip
        await store.delete_run("r1", T0 + 2, audit=[AuditEntry("run.purged", run_id="r1")])
        assert await store.get_run("r1") is None
        assert await store.load_steps("r1") == []
        assert await store.list_runs(subject=a) == []
        assert (await store.read_audit())[-1].kind == "run.purged"
        with _raises(RunNotFound):
            await store.delete_run("r1", T0 + 3)

    async def test_add_record_inserts_only_once(self, store: Store) -> None:
        claims = await asyncio.gather(
            *(store.add_record("alert", "k", json.dumps({"by": i}), T0,
                               audit=[AuditEntry("alert.raised", actor=str(i))])
              for i in range(5))
        )  # fmt: skip
        assert sorted(claims) == [False, False, False, False, True]
        winner = json.loads(await store.get_record("alert", "k") or "{}")["by"]
        raised = [r for r in await store.read_audit() if r.kind == "alert.raised"]
        assert [r.actor for r in raised] == [str(winner)]
