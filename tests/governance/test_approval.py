"""Approval steps: who may decide, quorum, expiry and escalation, on a real engine and store."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import batonflow as bf
from batonflow.catalog._approval import approval
from batonflow.errors import ApprovalRefused
from batonflow.governance._approval import (
    APPROVAL_TOPIC,
    ApprovalExpired,
    decide,
    list_pending,
    parse_duration,
    parse_request,
)
from batonflow.governance._identity import Identity, create_identity, list_identities
from batonflow.testing import FakeClock
from conftest import EngineFactory

SETUP = Identity("setup", roles=("admin",))
PEOPLE = {
    "root": ((), ("admin",)),
    "alice": (("finance",), ()),
    "bob": (("finance",), ()),
    "carol": (("finance",), ()),
    "dave": ((), ()),
    "erin": (("finance-leads",), ()),
    "frank": (("finance-leads",), ()),
}


async def people(store: bf.Store, now: float) -> dict[str, Identity]:
    for name, (groups, roles) in PEOPLE.items():
        email = f"{name}@example.test"
        await create_identity(
            store, name, actor=SETUP, now=now, groups=groups, roles=roles, email=email
        )
    return {i.name: i for i in await list_identities(store)}


def by_email(claim: dict[str, Any]) -> str:
    return str(claim["customer"])


@bf.workflow(subjects=by_email)
async def refund(ctx: bf.Context, claim: dict[str, Any]) -> dict[str, Any]:
    verdict = await approval(
        ctx,
        title="Refund {amount} EUR to {customer}",
        summary="Claim {id}",
        data=claim,
        approvers=claim.get("approvers", {"groups": ["finance"]}),
        quorum=claim.get("quorum", 1),
        require_comment=["reject"],
        expires_in=claim.get("expires_in", "PT4H"),
        on_expiry=claim.get("on_expiry", "reject"),
    )
    return {"paid": verdict["outcome"] == "approve", "verdict": verdict}


CLAIM = {"id": "C-1", "amount": 120, "customer": "dave@example.test"}


async def started(engine: bf.Engine, claim: dict[str, Any], by: str = "carol") -> str:
    handle = await engine.start(refund, claim, started_by=by)
    await engine.settle()
    assert await handle.status() is bf.RunStatus.WAITING
    return handle.run_id


async def refusals(store: bf.Store, run_id: str) -> list[tuple[str | None, str]]:
    """(who, why) of each refused decision; the run's own entries are sealed: open them."""
    opened = getattr(store, "open_json", None)
    found = []
    for e in await store.read_audit(run_id=run_id):
        if e.kind == "approval.refused":
            data = await opened(e.data_json, run_id) if opened else json.loads(e.data_json)
            found.append((e.actor, data["reason"]))
    return found


async def test_one_approval_resolves_the_run_with_decision_and_decider(
    engine: bf.Engine, clock: FakeClock
) -> None:
    who = await people(engine.store, clock.now())
    run_id = await started(engine, CLAIM)
    [pending] = await list_pending(engine.store)
    assert (pending.run_id, pending.title, pending.summary) == (
        run_id, "Refund 120 EUR to dave@example.test", "Claim C-1",
    )  # fmt: skip
    assert pending.expires_at == clock.now() + 4 * 3600
    subject = await engine.store.keys.ref("dave@example.test")  # type: ignore[attr-defined]
    assert set(pending.excluded) == {"carol", subject}  # the subject as its keyed reference

    decision = await decide(engine, run_id, who["alice"], "approve", now=clock.now())
    assert (decision.by, decision.option, decision.approval_id) == ("alice", "approve", pending.id)
    await engine.settle()
    output = await engine.handle(run_id).result()
    assert output["paid"] is True
    verdict = output["verdict"]
    assert verdict["outcome"] == "approve"
    assert verdict["decided_by"] == ["alice"]
    assert (verdict["expired"], verdict["escalated"]) == (False, False)
    assert await list_pending(engine.store) == []  # closed
    kinds = [e.kind for e in await engine.store.read_audit(run_id=run_id)]
    for kind in ("approval.requested", "approval.decision", "approval.resolved"):
        assert kind in kinds
    decisions = [e for e in await engine.store.read_audit() if e.kind == "approval.decision"]
    assert [d.actor for d in decisions] == ["alice"]
    with pytest.raises(ApprovalRefused, match="not waiting for an approval"):
        await decide(engine, run_id, who["bob"], "approve", now=clock.now())


async def test_self_approval_is_refused_and_audited(engine: bf.Engine, clock: FakeClock) -> None:
    who = await people(engine.store, clock.now())
    run_id = await started(engine, CLAIM, by="carol")  # carol is in finance, but started it
    with pytest.raises(ApprovalRefused, match="separation of duties"):
        await decide(engine, run_id, who["carol"], "approve", now=clock.now())
    assert (await refusals(engine.store, run_id))[0][0] == "carol"
    await engine.settle()
    assert await engine.handle(run_id).status() is bf.RunStatus.WAITING


async def test_the_runs_subject_may_not_approve_either(engine: bf.Engine, clock: FakeClock) -> None:
    who = await people(engine.store, clock.now())
    claim = {**CLAIM, "customer": "bob@example.test"}  # bob, in finance, is the subject
    run_id = await started(engine, claim, by="root")
    with pytest.raises(ApprovalRefused, match="separation of duties"):
        await decide(engine, run_id, who["bob"], "approve", now=clock.now())
    assert [a for a, _ in await refusals(engine.store, run_id)] == ["bob"]


async def test_an_outsider_is_refused_and_the_refusal_is_on_the_trail(
    engine: bf.Engine, clock: FakeClock
) -> None:
    who = await people(engine.store, clock.now())
    run_id = await started(engine, CLAIM)
    with pytest.raises(ApprovalRefused, match="not one of the deciders"):
        await decide(engine, run_id, who["erin"], "approve", now=clock.now())
    [(actor, reason)] = await refusals(engine.store, run_id)
    assert actor == "erin"
    assert "group finance" in reason
    # nothing reached the run
    assert list(await engine.store.list_events(run_id=run_id)) == []


async def test_quorum_two_of_three_and_no_double_counting(
    engine: bf.Engine, clock: FakeClock
) -> None:
    who = await people(engine.store, clock.now())
    claim = {**CLAIM, "approvers": {"users": ["alice", "bob", "erin"]}, "quorum": 2}
    run_id = await started(engine, claim)
    await decide(engine, run_id, who["alice"], "approve", now=clock.now())
    await engine.settle()
    assert await engine.handle(run_id).status() is bf.RunStatus.WAITING  # 1 of 2
    with pytest.raises(ApprovalRefused, match="already decided this approval"):
        await decide(engine, run_id, who["alice"], "approve", now=clock.now())
    await engine.settle()
    assert await engine.handle(run_id).status() is bf.RunStatus.WAITING  # still 1 of 2
    with pytest.raises(ApprovalRefused, match="needs a comment"):
        await decide(engine, run_id, who["bob"], "reject", now=clock.now())
    await decide(engine, run_id, who["bob"], "reject", comment="no receipt", now=clock.now())
    await engine.settle()
    assert await engine.handle(run_id).status() is bf.RunStatus.WAITING  # 1 approve, 1 reject
    await decide(engine, run_id, who["erin"], "approve", now=clock.now())
    await engine.settle()
    verdict = (await engine.handle(run_id).result())["verdict"]
    assert verdict["outcome"] == "approve"
    assert verdict["decided_by"] == ["alice", "erin"]
    assert verdict["comments"] == {"bob": "no receipt"}
    assert [a for a, _ in await refusals(engine.store, run_id)] == ["alice", "bob"]


async def test_a_duplicate_that_slips_past_decide_counts_once(
    engine: bf.Engine, clock: FakeClock
) -> None:
    """Two deciders racing from two processes: the run itself counts a person once."""
    who = await people(engine.store, clock.now())
    claim = {**CLAIM, "quorum": 2}
    run_id = await started(engine, claim)
    decision = await decide(engine, run_id, who["alice"], "approve", now=clock.now())
    # the same decision arriving twice (as a racing second `decide` would deliver it)
    await engine.store.deliver_event(
        APPROVAL_TOPIC, json.dumps(decision.payload), clock.now(),
        key=decision.approval_id, run_id=run_id,
    )  # fmt: skip
    await engine.settle()
    assert await engine.handle(run_id).status() is bf.RunStatus.WAITING
    assert any("counts once" in r for _, r in await refusals(engine.store, run_id))
    await decide(engine, run_id, who["bob"], "approve", now=clock.now())
    await engine.settle()
    verdict = (await engine.handle(run_id).result())["verdict"]
    assert verdict["decided_by"] == ["alice", "bob"]


async def test_a_forged_decision_event_counts_for_nothing(
    engine: bf.Engine, clock: FakeClock
) -> None:
    await people(engine.store, clock.now())
    run_id = await started(engine, CLAIM)
    [pending] = await list_pending(engine.store)
    forged = {"approval": pending.id, "round": 0, "by": "alice", "option": "approve", "at": 1.0}
    await engine.send_event(APPROVAL_TOPIC, forged, run_id=run_id, key=pending.id)
    await engine.settle()
    assert await engine.handle(run_id).status() is bf.RunStatus.WAITING
    assert any("approval decide" in r for _, r in await refusals(engine.store, run_id))


async def test_expiry_rejects(engine: bf.Engine, clock: FakeClock) -> None:
    who = await people(engine.store, clock.now())
    run_id = await started(engine, {**CLAIM, "expires_in": 3600})
    await clock.advance(3599)
    await engine.settle()
    assert await engine.handle(run_id).status() is bf.RunStatus.WAITING
    await clock.advance(1)
    await engine.settle()
    verdict = (await engine.handle(run_id).result())["verdict"]
    assert (verdict["outcome"], verdict["expired"], verdict["decided_by"]) == ("reject", True, [])
    with pytest.raises(ApprovalRefused):
        await decide(engine, run_id, who["alice"], "approve", now=clock.now())
    kinds = [e.kind for e in await engine.store.read_audit(run_id=run_id)]
    assert "approval.expired" in kinds


async def test_a_late_decision_is_refused_even_before_the_run_notices(
    engine: bf.Engine, clock: FakeClock
) -> None:
    who = await people(engine.store, clock.now())
    run_id = await started(engine, {**CLAIM, "expires_in": 60})
    late = clock.now() + 61  # expired, though the engine has not woken the run yet
    with pytest.raises(ApprovalRefused, match="expired"):
        await decide(engine, run_id, who["alice"], "approve", now=late)


async def test_expiry_escalates_to_another_group_who_decide(
    engine: bf.Engine, clock: FakeClock
) -> None:
    who = await people(engine.store, clock.now())
    escalate = {"escalate": {"groups": ["finance-leads"], "expires_in": "PT1H"}}
    run_id = await started(engine, {**CLAIM, "expires_in": "PT2H", "on_expiry": escalate})
    await clock.advance(2 * 3600)
    await engine.settle()
    assert await engine.handle(run_id).status() is bf.RunStatus.WAITING
    [pending] = await list_pending(engine.store)
    assert pending.escalated
    assert pending.approvers.groups == ("finance-leads",)
    assert pending.expires_at == clock.now() + 3600
    with pytest.raises(ApprovalRefused, match="not one of the deciders"):
        await decide(engine, run_id, who["alice"], "approve", now=clock.now())  # round over
    await decide(engine, run_id, who["frank"], "approve", now=clock.now())
    await engine.settle()
    verdict = (await engine.handle(run_id).result())["verdict"]
    assert (verdict["outcome"], verdict["decided_by"]) == ("approve", ["frank"])
    assert (verdict["escalated"], verdict["expired"], verdict["round"]) == (True, False, 1)
    kinds = [e.kind for e in await engine.store.read_audit(run_id=run_id)]
    assert "approval.escalated" in kinds


async def test_escalation_that_also_expires_applies_its_own_outcome(
    engine: bf.Engine, clock: FakeClock
) -> None:
    await people(engine.store, clock.now())
    escalate = {"escalate": {"groups": ["finance-leads"], "expires_in": 600, "on_expiry": "fail"}}
    run_id = await started(engine, {**CLAIM, "expires_in": 600, "on_expiry": escalate})
    await clock.advance(600)
    await engine.settle()
    await clock.advance(600)
    await engine.settle()
    with pytest.raises(bf.RunFailed, match="expired") as failed:
        await engine.handle(run_id).result()
    assert failed.value.error["type"].endswith("ApprovalExpired")


async def test_expiry_fails_the_run(engine: bf.Engine, clock: FakeClock) -> None:
    await people(engine.store, clock.now())
    run_id = await started(engine, {**CLAIM, "expires_in": "P1D", "on_expiry": "fail"})
    await clock.advance(86400)
    await engine.settle()
    with pytest.raises(bf.RunFailed, match="not decided before it expired"):
        await engine.handle(run_id).result()
    assert await list_pending(engine.store) == []


async def test_an_approval_survives_a_restart(make_engine: EngineFactory, clock: FakeClock) -> None:
    async with make_engine() as engine:
        who = await people(engine.store, clock.now())
        run_id = await started(engine, {**CLAIM, "quorum": 2})
        await decide(engine, run_id, who["alice"], "approve", now=clock.now())
        await engine.settle()
    async with make_engine(workflows=[refund]) as engine:
        # decided while the new engine runs: the parked run resumes from its journal
        await decide(engine, run_id, who["bob"], "approve", now=clock.now())
        await engine.settle()
        verdict = (await engine.handle(run_id).result())["verdict"]
    assert verdict["decided_by"] == ["alice", "bob"]


async def test_a_waiting_approval_holds_no_task(engine: bf.Engine, clock: FakeClock) -> None:
    await people(engine.store, clock.now())
    for n in range(20):
        await engine.start(refund, {**CLAIM, "id": f"C-{n}"}, started_by="carol")
    await engine.settle()
    assert len(await list_pending(engine.store)) == 20
    assert engine._active == {}  # parked runs are rows: no activation, task or thread
    runs = await engine.store.list_runs(status=bf.RunStatus.WAITING)
    assert len(runs) == 20
    assert {r.owner for r in runs} == {None}  # and no lease held for them


async def test_python_templating_errors_are_clear(engine: bf.Engine, clock: FakeClock) -> None:
    @bf.workflow(name="bad-template")
    async def bad(ctx: bf.Context) -> Any:
        return await approval(ctx, title="Refund {missing}", data={}, approvers={"users": ["a"]})

    with pytest.raises(bf.RunFailed, match=r"Refund \{missing\}.*KeyError"):
        await engine.run(bad)


async def test_too_few_named_deciders_after_separation_of_duties(
    engine: bf.Engine, clock: FakeClock
) -> None:
    claim = {**CLAIM, "approvers": {"users": ["carol", "alice"]}, "quorum": 2}
    handle = await engine.start(refund, claim, started_by="carol")
    with pytest.raises(bf.RunFailed, match="only 1 of its users"):
        await handle.result()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"title": ""}, "'title' must be a non-empty string"),
        ({"approvers": {}}, "names nobody"),
        ({"approvers": {"user": ["a"]}}, "unknown key 'user'"),
        ({"quorum": 0}, "'quorum' must be a whole number"),
        ({"options": ["ok", "ok"]}, "lists a name twice"),
        ({"require_comment": ["maybe"]}, "'maybe', which is not one of the options"),
        ({"expires_in": "4 hours"}, "not an ISO 8601 duration"),
        ({"expires_in": -5}, "must be positive"),
        (
            {"on_expiry": "shrug"},
            "'on_expiry' must be 'escalate' \\(the default\\), 'reject', 'fail'",
        ),
        ({"on_expiry": {"escalate": {"groups": ["x"]}}}, "escalating needs 'expires_in'"),
        (
            {"expires_in": 60, "on_expiry": {"escalate": {"group": ["x"]}}},
            "unknown key 'group'",
        ),
    ],
)
def test_bad_arguments_say_what_was_expected(arguments: dict[str, Any], message: str) -> None:
    full: dict[str, Any] = {"title": "Pay", "approvers": {"groups": ["finance"]}, **arguments}
    with pytest.raises(bf.ConfigError, match=message):
        parse_request(**full)


def test_durations() -> None:
    assert parse_duration("PT4H") == 4 * 3600
    assert parse_duration("P1DT12H") == 36 * 3600
    assert parse_duration("P2W") == 14 * 86400
    assert parse_duration(90) == 90.0
    for bad in ("P", "PT", "P1Y", "P1M", "1h"):
        with pytest.raises(bf.ConfigError):
            parse_duration(bad)


def test_approval_expired_is_an_event_timeout() -> None:
    assert issubclass(ApprovalExpired, bf.EventTimeout)


DOCUMENT: dict[str, Any] = {
    "document": {"dsl": "1.0.3", "namespace": "test", "name": "refund", "version": "1.0.0"},
    "do": [
        {
            "review": {
                "call": "approval",
                "with": {
                    "title": '${ "Refund \\(.amount) EUR" }',
                    "approvers": {"groups": ["finance"]},
                    "require_comment": ["reject"],
                    "expires_in": "PT1H",
                },
            }
        },
        {
            "route": {
                "switch": [
                    {"approved": {"when": '${ .outcome == "approve" }', "then": "pay"}},
                    {"otherwise": {"then": "refuse"}},
                ]
            }
        },
        {"pay": {"set": {"paid": True, "by": "${ .decided_by }"}, "then": "end"}},
        {"refuse": {"set": {"paid": False, "why": "${ .comments | to_entries | .[0].value }"}}},
    ],
}


@pytest.mark.parametrize(
    ("option", "comment", "expected"),
    [
        ("approve", None, {"paid": True, "by": ["alice"]}),
        ("reject", "duplicate claim", {"paid": False, "why": "duplicate claim"}),
    ],
)
async def test_a_dsl_flow_routes_on_the_decision(
    engine: bf.Engine, clock: FakeClock, option: str, comment: str | None, expected: Any
) -> None:
    from batonflow.dsl import DslRuntime

    who = await people(engine.store, clock.now())
    runtime = DslRuntime(functions={"approval": approval})
    engine.register(runtime.workflow)
    payload = {"definition": DOCUMENT, "input": {"amount": 75}}
    handle = await engine.start(runtime.workflow, payload, started_by="carol")
    await engine.settle()
    [pending] = await list_pending(engine.store)
    assert pending.title == "Refund 75 EUR"
    with pytest.raises(ApprovalRefused, match="separation of duties"):
        await decide(engine, handle.run_id, who["carol"], option, comment=comment, now=clock.now())
    await decide(engine, handle.run_id, who["alice"], option, comment=comment, now=clock.now())
    await engine.settle()
    assert await handle.result() == expected
    await runtime.aclose()


@bf.workflow
async def two_keys(ctx: bf.Context, amount: int) -> list[str]:
    """Two approvals at once, in parallel branches: finance and legal."""
    verdicts = await ctx.parallel(
        approval(ctx, title=f"Finance: {amount}", approvers={"groups": ["finance"]}),
        approval(ctx, title=f"Legal: {amount}", approvers={"users": ["dave"]}),
    )
    return [v["outcome"] for v in verdicts]


async def test_a_run_waiting_for_two_approvals_needs_the_id(
    engine: bf.Engine, clock: FakeClock
) -> None:
    who = await people(engine.store, clock.now())
    handle = await engine.start(two_keys, 10, started_by="root")
    await engine.settle()
    finance, legal = await list_pending(engine.store)
    assert (finance.title, legal.title) == ("Finance: 10", "Legal: 10")
    with pytest.raises(bf.ConfigError, match="waits for 2 approvals"):
        await decide(engine, handle.run_id, who["dave"], "approve")
    with pytest.raises(ApprovalRefused, match="not one of the deciders"):
        await decide(engine, handle.run_id, who["dave"], "approve", approval_id=finance.id)
    await decide(engine, handle.run_id, who["dave"], "reject", approval_id=legal.id)
    await decide(engine, handle.run_id, who["bob"], "approve", approval_id=finance.id)
    await engine.settle()
    assert await handle.result() == ["approve", "reject"]


async def test_a_cancelled_runs_approval_is_closed(engine: bf.Engine, clock: FakeClock) -> None:
    who = await people(engine.store, clock.now())
    run_id = await started(engine, CLAIM)
    await engine.cancel(run_id)
    assert await list_pending(engine.store) == []
    with pytest.raises(ApprovalRefused, match="cancelled"):
        await decide(engine, run_id, who["alice"], "approve")
    with pytest.raises(bf.RunNotFound):
        await decide(engine, "no-such-run", who["alice"], "approve")


async def test_racing_decisions_by_one_person_count_once(
    engine: bf.Engine, clock: FakeClock
) -> None:
    who = await people(engine.store, clock.now())
    run_id = await started(engine, {**CLAIM, "quorum": 2})
    outcomes = await asyncio.gather(
        *(decide(engine, run_id, who["alice"], "approve") for _ in range(3)),
        return_exceptions=True,
    )
    # in one process decide checks and records one decision at a time: the others are refused
    assert [type(o).__name__ for o in outcomes].count("Decision") == 1
    assert sum(isinstance(o, ApprovalRefused) for o in outcomes) == 2
    await engine.settle()
    assert await engine.handle(run_id).status() is bf.RunStatus.WAITING  # alice counted once
    await decide(engine, run_id, who["bob"], "approve")
    await engine.settle()
    assert (await engine.handle(run_id).result())["verdict"]["decided_by"] == ["alice", "bob"]


def test_expiry_never_decides_unless_told_to() -> None:
    """The default escalates (same approvers, or the escalation's own, again and again);
    rejecting on expiry must be written."""
    plain = parse_request(title="Pay", approvers={"groups": ["finance"]}, expires_in="PT4H")
    assert plain.on_expiry == "escalate"
    again = plain.escalation(now=1000.0)
    assert (again.approvers, again.round, again.expires_at) == (plain.approvers, 1, 1000 + 4 * 3600)
    assert again.on_expiry == "escalate"
    onward = parse_request(
        title="Pay", approvers={"groups": ["finance"]}, expires_in="PT4H",
        on_expiry={"escalate": {"groups": ["partners"], "expires_in": "PT1H"}},
    )  # fmt: skip
    partners = onward.escalation(now=0.0)
    assert partners.approvers.groups == ("partners",)
    assert partners.on_expiry == "escalate"  # and then the partners are asked again
    assert partners.escalation(now=3600.0).approvers.groups == ("partners",)
    explicit = parse_request(
        title="Pay", approvers={"groups": ["finance"]}, expires_in="PT4H", on_expiry="reject"
    )
    assert explicit.on_expiry == "reject"
