"""``approval``: a step that waits for people to decide, callable from Python and the DSL.

Python::

    verdict = await approval(
        ctx, title="Refund {amount} EUR to {customer}", data=claim,
        approvers={"groups": ["finance"]}, quorum=2, expires_in="P2D",
        on_expiry={"escalate": {"groups": ["finance-leads"], "expires_in": "P1D"}},
    )
    if verdict["outcome"] == "approve": ...

DSL (``DslRuntime(functions={"approval": approval})``)::

    - review:
        call: approval
        with:
          title: ${ "Refund \\(.amount) EUR" }
          approvers: {groups: [finance]}
          expires_in: PT4H
    - route:
        switch:
          - yes: {when: '${ .outcome == "approve" }', then: pay}
          - no:  {then: refuse}

The result, which the next step routes on, is ``{"approval", "outcome", "decided_by",
"comments", "votes", "escalated", "expired", "round"}``. Decisions come from ``batonflow approval
decide`` (or :func:`batonflow.governance.decide`), checked against the rules before they reach
the run. Everything here is replay-safe workflow code: its effects are four kinds of steps
(``approval.request``, ``approval.count``, ``approval.escalate``, ``approval.close``) and event
waits, so a waiting approval is a parked run holding no thread, and survives restarts.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from batonflow.core import Context, Engine, audit, current_step, takes_context
from batonflow.core import step as as_step
from batonflow.core._ids import short_run_id
from batonflow.errors import ConfigError, EventTimeout
from batonflow.governance._alert_hook import submit_alert, watch_approval
from batonflow.governance._approval import (
    APPROVAL_KIND,
    APPROVAL_TOPIC,
    CLOSE_STEP,
    COUNT_STEP,
    ESCALATE_STEP,
    REQUEST_STEP,
    VOTE_KIND,
    ApprovalExpired,
    ApprovalRequest,
    parse_request,
    tally,
    vote_key,
    vote_on_trail,
)

__all__ = ["approval"]


@takes_context
async def approval(
    ctx: Context,
    *,
    title: str,
    approvers: Mapping[str, Sequence[str]],
    summary: str | None = None,
    quorum: int = 1,
    options: Sequence[str] = ("approve", "reject"),
    require_comment: Sequence[str] = (),
    expires_in: float | str | None = None,
    on_expiry: str | Mapping[str, Any] = "escalate",
    data: Any = None,
) -> dict[str, Any]:
    """Ask people to decide, wait (parked) until ``quorum`` of them pick the same option or the
    approval expires, and return the verdict.

    ``title``/``summary`` are formatted with ``str.format`` against ``data`` when ``data`` is
    an object (the DSL evaluates ``${ }`` itself). ``approvers``: ``{"users": [...], "groups":
    [...]}``. ``require_comment``: the options that need a comment. ``expires_in``: seconds or
    an ISO 8601 duration. ``on_expiry``: ``"escalate"`` (the default: nobody decides against
    anyone by silence; the same approvers are asked again for another ``expires_in``, the run
    keeps waiting, and an ``approval.expired`` alert tells the operators), ``{"escalate":
    {"groups": [...], "users": [...], "quorum": 1, "expires_in": ..., "on_expiry": ...}}`` for
    a new round of other deciders (whose own expiry escalates again unless it says otherwise),
    or an explicit choice: ``"reject"`` (outcome ``reject``), another option, or ``"fail"``
    (raise :class:`ApprovalExpired`).
    The run's starter and its data subjects may never decide (separation of duties).
    """
    request = parse_request(
        title=_template(title, data, "title"),
        summary=None if summary is None else _template(summary, data, "summary"),
        approvers=approvers,
        quorum=quorum,
        options=options,
        require_comment=require_comment,
        expires_in=expires_in,
        on_expiry=on_expiry,
    )
    # separation of duties: whoever started the run (child runs inherit it) and its subjects
    starter = (ctx.run.started_by,) if ctx.run.started_by else ()
    request = replace(request, excluded=tuple(dict.fromkeys((*starter, *ctx.run.subjects))))
    engine = ctx.engine
    recorded = await ctx.step(_step(REQUEST_STEP, _request, engine), request.to_dict())
    current = ApprovalRequest.from_dict(recorded)
    votes: list[dict[str, Any]] = []
    while (outcome := tally(current, votes)) is None:
        left = (
            None
            if current.expires_at is None
            else max(0.0, current.expires_at - engine.clock.now())
        )
        try:
            vote = await ctx.wait_for_event(APPROVAL_TOPIC, key=current.id, timeout=left)
        except EventTimeout:
            if current.escalates:
                escalated = await ctx.step(
                    _step(ESCALATE_STEP, _escalate, engine), current.to_dict()
                )
                current, votes = ApprovalRequest.from_dict(escalated), []
                continue
            return await _expire(ctx, current, votes)
        if await ctx.step(_step(COUNT_STEP, _count, engine), current.to_dict(), vote, votes):
            votes.append(vote)
    result = _verdict(current, votes, outcome, expired=False)
    closed: dict[str, Any] = await ctx.step(_step(CLOSE_STEP, _close, engine), result)
    return closed


async def _expire(
    ctx: Context, current: ApprovalRequest, votes: list[dict[str, Any]]
) -> dict[str, Any]:
    fail = current.on_expiry == "fail"
    outcome = "expired" if fail else str(current.on_expiry)
    result = _verdict(current, votes, outcome, expired=True)
    closed: dict[str, Any] = await ctx.step(_step(CLOSE_STEP, _close, ctx.engine), result)
    if fail:
        raise ApprovalExpired(
            f"approval {current.id} ({current.title!r}) was not decided before it expired"
        )
    return closed


def _template(text: Any, data: Any, name: str) -> Any:
    if not isinstance(text, str) or not isinstance(data, Mapping):
        return text
    try:
        return text.format_map(data)
    except (KeyError, IndexError, AttributeError, ValueError) as exc:
        raise ConfigError(
            f"approval {name} {text!r}: cannot fill it from data ({type(exc).__name__}: {exc});"
            " use {field} for data's fields and {{ }} for literal braces"
        ) from None


def _verdict(
    request: ApprovalRequest, votes: list[dict[str, Any]], outcome: str, *, expired: bool
) -> dict[str, Any]:
    deciders = [v for v in votes if v["option"] == outcome] if not expired else []
    return {
        "approval": request.id,
        "run_id": request.run_id,
        "title": request.title,
        "outcome": outcome,
        "decided_by": [v["by"] for v in deciders],
        "comments": {v["by"]: v["comment"] for v in votes if v.get("comment")},
        "votes": [{k: v.get(k) for k in ("by", "option", "comment", "at")} for v in votes],
        "escalated": request.escalated,
        "expired": expired,
        "round": request.round,
    }


def _step(name: str, fn: Callable[..., Awaitable[Any]], engine: Engine) -> Any:
    return as_step(functools.partial(fn, engine), name=name)


# -- the steps ----------------------------------------------------------------------------------


def _expired_alert(engine: Engine, expired: ApprovalRequest, next_round: ApprovalRequest) -> None:
    """Tell the operators (``[governance.alerts]``) an approval expired undecided, and whom it
    went to next; the run keeps waiting."""
    who = next_round.approvers.describe()
    then = f"asked {who} again" if next_round.approvers == expired.approvers else f"sent to {who}"
    summary = (
        f"approval {expired.title[:80]!r} on run …{short_run_id(expired.run_id)}"
        f" ({expired.workflow})"
        f" expired undecided: {then}; the run keeps waiting"
    )
    details = {
        "approval": expired.id,
        "title": expired.title,
        "round": next_round.round,
        "approvers": next_round.approvers.to_dict(),
        "expires_at": next_round.expires_at,
    }
    submit_alert(
        engine,
        kind="approval.expired",
        key=f"approval.expired:{expired.id}:{expired.round}",
        summary=summary,
        run_id=expired.run_id,
        workflow=expired.workflow,
        details=details,
    )


async def _request(engine: Engine, spec: dict[str, Any]) -> dict[str, Any]:
    """Record the request (its id is this step's position) and who may not decide it."""
    info = current_step()
    now = engine.clock.now()
    request = replace(
        ApprovalRequest.from_dict(spec),
        id=f"{info.run_id}#{info.step_id}",
        run_id=info.run_id,
        workflow=info.workflow,
        requested_at=now,
    )
    if request.expires_in is not None:
        request = replace(request, expires_at=now + request.expires_in)
    _check_feasible(request)
    await engine.store.put_record(APPROVAL_KIND, request.id, _json(request.to_dict()), now)
    audit("approval.requested", _summary(request))
    watch_approval(engine, request.id, request.expires_at)
    return request.to_dict()


def _check_feasible(request: ApprovalRequest) -> None:
    """Named users only, too few of them left after separation of duties: say so now rather
    than wait for an expiry that no decision can prevent."""
    if request.approvers.groups:
        return
    excluded = {e.casefold() for e in request.excluded}
    eligible = [u for u in request.approvers.users if u.casefold() not in excluded]
    if len(eligible) < request.quorum:
        raise ConfigError(
            f"approval {request.title!r} needs {request.quorum} decision(s) but only"
            f" {len(eligible)} of its users ({', '.join(request.approvers.users)}) may decide:"
            f" the run's starter and subjects ({', '.join(request.excluded)}) may not"
        )


async def _count(
    engine: Engine, spec: dict[str, Any], vote: Any, counted: list[dict[str, Any]]
) -> bool:
    """Does this delivered decision count? Only with its vote record (it came through
    ``decide``), in the current round, once per person."""
    request = ApprovalRequest.from_dict(spec)
    reason = _vote_rejection(request, vote, counted)
    if reason is None:
        record = await engine.store.get_record(
            VOTE_KIND, vote_key(request.id, request.round, vote["by"])
        )
        if record is None or json.loads(record).get("at") != vote.get("at"):
            reason = "no matching decision was recorded through `approval decide`"
        elif not await vote_on_trail(engine.store, request.run_id, record):
            reason = "its vote record has no verified approval.decision entry on the audit trail"
    if reason is not None:
        by = vote.get("by") if isinstance(vote, dict) else None
        audit("approval.refused", {"approval": request.id, "by": by, "reason": reason})
        return False
    return True


def _vote_rejection(
    request: ApprovalRequest, vote: Any, counted: list[dict[str, Any]]
) -> str | None:
    if not isinstance(vote, dict) or not isinstance(vote.get("by"), str):
        return "the event is not a decision"
    if vote.get("round") != request.round:
        return "the decision was for an earlier round, before the approval was escalated"
    if vote.get("option") not in request.options:
        return f"{vote.get('option')!r} is not an option"
    if vote["by"].casefold() in {e.casefold() for e in request.excluded}:
        return "separation of duties"
    if any(c["by"] == vote["by"] for c in counted):
        return f"{vote['by']} already decided; one person counts once"
    return None


async def _escalate(engine: Engine, spec: dict[str, Any]) -> dict[str, Any]:
    now = engine.clock.now()
    expired = ApprovalRequest.from_dict(spec)
    request = expired.escalation(now)
    await engine.store.put_record(APPROVAL_KIND, request.id, _json(request.to_dict()), now)
    audit("approval.escalated", _summary(request))
    _expired_alert(engine, expired, request)
    watch_approval(engine, request.id, request.expires_at)
    return request.to_dict()


async def _close(engine: Engine, result: dict[str, Any]) -> dict[str, Any]:
    await engine.store.put_record(APPROVAL_KIND, result["approval"], None, engine.clock.now())
    audit("approval.expired" if result["expired"] else "approval.resolved", result)
    return result


def _summary(request: ApprovalRequest) -> dict[str, Any]:
    return {
        "approval": request.id,
        "title": request.title,
        "approvers": request.approvers.to_dict(),
        "quorum": request.quorum,
        "options": list(request.options),
        "expires_at": request.expires_at,
        "round": request.round,
    }


def _json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
