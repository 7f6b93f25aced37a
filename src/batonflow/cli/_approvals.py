"""``batonflow approval ...``: see what waits for a decision, and decide it.

``decide`` checks the decision against the approval's rules before it reaches the run (who may
decide, separation of duties, one vote per person, a comment where required); a refusal is
recorded on the audit trail and reported with a non-zero exit. An accepted decision wakes the
run: a running ``batonflow worker`` continues it.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from batonflow.cli._identities import read, refusals, run_as
from batonflow.cli._io import DEFAULT_DB, cli_errors, console, note, print_json, resolve_db
from batonflow.cli._options import AsJson, Db, Token
from batonflow.cli._render import db_flag, when
from batonflow.governance._approval import (
    ApprovalRequest,
    ApprovalState,
    Decision,
    aliases_in,
    approvals_of,
    decide,
    list_pending,
    may_decide,
)
from batonflow.governance._identity import Identity, cli_identity
from batonflow.store import Store

__all__ = ["approval_app"]

approval_app = typer.Typer(
    help="Approvals: list what waits for a decision, show a run's approvals, decide.",
    no_args_is_help=True,
)
RunId = Annotated[str, typer.Argument(metavar="RUN_ID", help="The run's id.", show_default=False)]


def _request_doc(r: ApprovalRequest) -> dict[str, Any]:
    return {
        "approval": r.id,
        "run_id": r.run_id,
        "workflow": r.workflow,
        "title": r.title,
        "summary": r.summary,
        "approvers": r.approvers.to_dict(),
        "quorum": r.quorum,
        "options": list(r.options),
        "require_comment": list(r.require_comment),
        "requested_at": r.requested_at,
        "expires_at": r.expires_at,
        "on_expiry": r.on_expiry,
        "round": r.round,
        "escalated": r.escalated,
    }


def _expires(r: ApprovalRequest) -> str:
    if r.expires_at is None:
        return "never"
    left = r.expires_at - time.time()
    return when(r.expires_at) + (" (expired)" if left <= 0 else "")


@approval_app.command("list")
def approval_list(
    mine: Annotated[
        bool,
        typer.Option("--mine", help="Only approvals the acting identity (--token) may decide."),
    ] = False,
    db: Db = DEFAULT_DB,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List approvals waiting for a decision, oldest first."""

    async def pending(store: Store) -> list[ApprovalRequest]:
        found = await list_pending(store)
        if mine:
            me: Identity = await cli_identity(store, token)
            known = await aliases_in(store, me)
            found = [r for r in found if may_decide(r, me, known) is None]
        return found

    with cli_errors(), refusals():
        path = resolve_db(db, must_exist=True)
        found = read(path, pending)
    if as_json:
        print_json([_request_doc(r) for r in found])
        return
    if not found:
        console().print("no approvals are waiting", markup=False)
        return
    table = Table()
    for column in ("run", "title", "who may decide", "quorum", "options", "expires"):
        table.add_column(column)
    for r in found:
        who = r.approvers.describe() + (" (escalated)" if r.escalated else "")
        table.add_row(
            r.run_id, r.title, who, str(r.quorum), " / ".join(r.options), _expires(r)
        )  # fmt: skip
    console().print(table)


@approval_app.command("show")
def approval_show(run_id: RunId, db: Db = DEFAULT_DB, as_json: AsJson = False) -> None:
    """Show a run's approvals: rules, decisions so far, refusals, and the verdict."""
    with cli_errors():
        path = resolve_db(db, must_exist=True)
        states = read(path, lambda store: approvals_of(store, run_id))
    if as_json:
        print_json([_state_doc(s) for s in states])
        return
    if not states:
        console().print(f"run {run_id} has asked for no approval", markup=False)
        return
    for state in states:
        _render_state(state)


def _state_doc(s: ApprovalState) -> dict[str, Any]:
    return {
        **_request_doc(s.request),
        "status": s.status,
        "result": s.result,
        "decisions": s.decisions,
        "refusals": s.refusals,
    }


def _render_state(s: ApprovalState) -> None:
    out = console()
    r = s.request
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("approval", r.id)
    head.add_row("title", r.title)
    if r.summary:
        head.add_row("summary", r.summary)
    head.add_row("status", s.status)
    head.add_row("who may decide", r.approvers.describe() + (" (escalated)" if r.escalated else ""))
    head.add_row("quorum", f"{r.quorum} of the same option ({' / '.join(r.options)})")
    if r.require_comment:
        head.add_row("comment needed for", ", ".join(r.require_comment))
    if r.excluded:
        head.add_row("may not decide", ", ".join(r.excluded) + " (starter, subjects)")
    head.add_row("requested", when(r.requested_at))
    head.add_row("expires", _expires(r) + f", then {_then(r.on_expiry)}")
    if s.result is not None:
        by = ", ".join(s.result["decided_by"]) or "nobody"
        head.add_row("outcome", f"{s.result['outcome']} (decided by {by})")
    out.print(head)
    for d in s.decisions:
        comment = f": {d['comment']}" if d.get("comment") else ""
        line = f"  decision  {when(d.get('at'))}  {d.get('by')} {d.get('option')}{comment}"
        out.print(line, markup=False, soft_wrap=True)
    for f in s.refusals:
        text = f"  refused   {when(f.get('at'))}  {f.get('by')}: {f.get('reason')}"
        out.print(Text(text, style="red"), soft_wrap=True)


def _then(on_expiry: Any) -> str:
    if isinstance(on_expiry, dict):
        spec = on_expiry["escalate"]
        return "escalate to " + ", ".join(
            [*spec.get("users", ()), *(f"group {g}" for g in spec.get("groups", ()))]
        )
    if on_expiry == "escalate":
        return "ask the same approvers again (the run keeps waiting)"
    return "fail the run" if on_expiry == "fail" else f"outcome {on_expiry!r}"


@approval_app.command("decide")
def approval_decide(
    run_id: RunId,
    option: Annotated[
        str,
        typer.Option("--option", "-o", help="Your decision: approve, reject, or another option."),
    ],
    comment: Annotated[
        str | None, typer.Option("--comment", "-m", help="Why (some options require it).")
    ] = None,
    approval: Annotated[
        str | None,
        typer.Option(
            "--approval", metavar="ID", help="Which approval, when the run waits for several."
        ),
    ] = None,
    db: Db = DEFAULT_DB,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Decide a run's pending approval as the identity of --token (or BATONFLOW_TOKEN)."""
    with cli_errors(), refusals():
        path = resolve_db(db, must_exist=True)
        decision: Decision = run_as(
            path, token,
            lambda store, me: decide(
                store, run_id, me, option.strip(), comment=comment, approval_id=approval,
                now=time.time(),
            ),
        )  # fmt: skip
    if as_json:
        print_json({**decision.payload, "run_id": decision.run_id, "event": decision.event_id})
        return
    console().print(
        f"{decision.by} decided {decision.option!r} on run {decision.run_id}"
        f" (approval {decision.approval_id})",
        markup=False,
    )
    note(f"a running `batonflow worker{db_flag(db)}` continues the run")
