"""``batonflow triggers list|pause|resume|trigger-now|backfill|run``: the schedules configured in
``batonflow.toml`` (``[triggers.schedules.NAME]``) and in workflow documents.

``run`` hosts them (with an engine executing the runs they start, as ``batonflow worker
--triggers`` does); the other commands read and write the database, so they work while a host
runs: pause and resume take effect at the next tick, trigger-now and backfill at the host's
next look (a few seconds). With the root ``--server URL`` they act on that service's triggers
through its API (``batonflow.Client``) instead. ``list`` shows :func:`describe_triggers`, the
description the API and the console show.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

import batonflow as bf
from batonflow.cli import _ops, _remote, _setup, _worker
from batonflow.cli._io import (
    DEFAULT_DB,
    cli_errors,
    configure_logging,
    console,
    ensure_cwd_on_path,
    note,
    print_json,
    resolve_db,
)
from batonflow.cli._options import AsJson, Db, Token

__all__ = ["triggers_app"]

triggers_app = typer.Typer(
    help="Triggers that start runs by themselves: schedules (cron, intervals), mailboxes,"
    " webhooks and events, from batonflow.toml and workflow documents.",
    no_args_is_help=True,
)

Name = Annotated[
    str, typer.Argument(metavar="NAME", help="The trigger's name.", show_default=False)
]
Documents = Annotated[
    list[str] | None,
    typer.Option(
        "--document",
        metavar="FILE",
        help="A workflow document whose `schedule` to act on (repeatable), besides"
        " [triggers] documents in the configuration.",
    ),
]
Overlap = Annotated[
    str,
    typer.Option(
        "--overlap",
        metavar="POLICY",
        help="While the schedule's last run is open: skip, buffer_one, allow_all (default:"
        " start anyway) or cancel_other.",
    ),
]


def _schedules(documents: list[str] | None, db: str) -> list[Any]:
    """The configured triggers, with those of the documents deployed through the API."""
    from batonflow.dsl import DslRuntime
    from batonflow.triggers._host import deployed_documents

    async def deployed(path: str) -> list[dict[str, Any]]:
        async with _ops.opened_store(path) as store:
            return await deployed_documents(store)

    ensure_cwd_on_path()
    path = resolve_db(db, must_exist=False)
    fresh = not path.startswith(("postgres://", "postgresql://")) and not Path(path).exists()
    found = [] if fresh else asyncio.run(deployed(path))  # a missing database is not made
    return list(_setup.current().schedules(DslRuntime(), tuple(documents or ()), deployed=found))


def _known(name: str, documents: list[str] | None, db: str, *, schedules_only: bool = True) -> None:
    """``name`` is a configured schedule (or, for pause and resume, any trigger)."""
    from batonflow.triggers._describe import find_trigger

    find_trigger(_schedules(documents, db), name, schedules_only=schedules_only)


@triggers_app.command("list")
def list_triggers(
    documents: Documents = None, token: Token = None, db: Db = DEFAULT_DB, as_json: AsJson = False
) -> None:
    """Each trigger's state, last success, backlog and next fire times (with the root
    --server: the service's triggers)."""
    with cli_errors():
        if _remote.server() is not None:
            states = asyncio.run(_remote_call(token, lambda client: client.list_triggers()))
        else:
            path = resolve_db(db, must_exist=False)
            states = asyncio.run(_statuses(path, _schedules(documents, db)))
    if as_json:
        print_json(states)
        return
    if not states:
        note("no triggers configured: add [triggers.schedules.NAME] to batonflow.toml")
        return
    table = Table("NAME", "WHEN", "STATE", "LAST SUCCESS", "BACKLOG", "FAILURES", "NEXT",
                  box=None, pad_edge=False)  # fmt: skip
    for s in states:
        colour = {"active": "green", "paused": "yellow"}.get(s["state"], "bold red")
        when = f"[bold red]{s['when']}[/]" if s.get("unsigned") else s["when"]
        table.add_row(
            s["name"], when, f"[{colour}]{s['state']}[/]", s["last_success"] or "-",
            _or_dash(s["backlog"]), _or_dash(s.get("failures")), ", ".join(s["next"][:2]) or "-",
        )  # fmt: skip
    console().print(table)
    for s in states:
        if s["last_error"]:
            note(f"{s['name']}: {s['last_error']}")


def _or_dash(count: int | None) -> str:
    return "-" if count is None else str(count)


async def _statuses(path: str, schedules: list[Any]) -> list[dict[str, Any]]:
    from batonflow.triggers._describe import describe_triggers

    async with _ops.opened_store(path) as store:
        return [i.to_dict() for i in await describe_triggers(store, schedules, time.time())]


async def _remote_call(token: str | None, call: Any) -> Any:
    async with bf.Client(_remote.server() or "", token=token) as client:
        return await call(client)


@triggers_app.command()
def pause(
    name: Name,
    reason: Annotated[str, typer.Option("--reason", help="Why; recorded in the audit.")] = "",
    documents: Documents = None,
    token: Token = None,
    db: Db = DEFAULT_DB,
) -> None:
    """Pause a trigger until `batonflow triggers resume`: a schedule's ticks start nothing, a
    mailbox's messages wait in it."""
    from batonflow.triggers import _control

    with cli_errors():
        if _remote.server() is not None:
            done = asyncio.run(_remote_call(token, lambda c: c.pause_trigger(name, reason=reason)))
            changed = done["changed"]
        else:
            _known(name, documents, db, schedules_only=False)
            changed = _act(db, token, lambda store, me, now: _control.pause(
                store, name, by=me, now=now, note=reason))  # fmt: skip
    note(f"trigger {name!r} {'paused' if changed else 'was paused already'}")


@triggers_app.command()
def resume(
    name: Name, documents: Documents = None, token: Token = None, db: Db = DEFAULT_DB
) -> None:
    """Resume a paused trigger: a schedule from its next tick (backfill the paused ones if
    wanted), a mailbox with the messages waiting in it."""
    from batonflow.triggers import _control

    with cli_errors():
        if _remote.server() is not None:
            done = asyncio.run(_remote_call(token, lambda c: c.resume_trigger(name)))
            changed = done["changed"]
        else:
            _known(name, documents, db, schedules_only=False)
            changed = _act(db, token, lambda store, me, now: _control.resume(
                store, name, by=me, now=now))  # fmt: skip
    note(f"trigger {name!r} {'resumed' if changed else 'was not paused'}")


@triggers_app.command("trigger-now")
def trigger_now(
    name: Name,
    overlap: Overlap = "allow_all",
    documents: Documents = None,
    token: Token = None,
    db: Db = DEFAULT_DB,
) -> None:
    """Start one run of a schedule now (at the hosting process's next look)."""
    from batonflow.triggers import _control

    with cli_errors():
        policy = _policy(overlap)
        if _remote.server() is not None:
            done = asyncio.run(_remote_call(token, lambda c: c.trigger_now(
                name, overlap=policy.value)))  # fmt: skip
            key = done["request"]
        else:
            _known(name, documents, db)
            key = _act(db, token, lambda store, me, now: _control.request_trigger(
                store, name, by=me, now=now, overlap=policy))  # fmt: skip
    note(f"requested a run of {name!r} (request {key}); the process hosting triggers starts it")


@triggers_app.command()
def backfill(
    name: Name,
    start: Annotated[str, typer.Option("--start", metavar="ISO", help="First instant.")],
    end: Annotated[str, typer.Option("--end", metavar="ISO", help="Last instant.")],
    overlap: Overlap = "allow_all",
    documents: Documents = None,
    token: Token = None,
    db: Db = DEFAULT_DB,
) -> None:
    """Act on a schedule's ticks between --start and --end (ISO 8601; without a zone: UTC)
    as if they had fired; ticks that started a run keep it."""
    from batonflow.triggers import _control

    with cli_errors():
        policy = _policy(overlap)
        first, last = _instant(start, "--start"), _instant(end, "--end")
        if _remote.server() is not None:
            done = asyncio.run(_remote_call(token, lambda c: c.backfill_trigger(
                name, start=_iso(first), end=_iso(last), overlap=policy.value)))  # fmt: skip
            key = done["request"]
        else:
            _known(name, documents, db)
            key = _act(db, token, lambda store, me, now: _control.request_backfill(
                store, name, start=first, end=last, by=me, now=now, overlap=policy))  # fmt: skip
    note(f"requested a backfill of {name!r} (request {key}); the process hosting triggers acts")


@triggers_app.command("run")
def run_triggers(
    documents: Documents = None,
    db: Db = DEFAULT_DB,
    poll: Annotated[
        float, typer.Option("--poll", min=0.05, metavar="SECONDS", help="Engine poll.")
    ] = 1.0,
    grace: Annotated[
        float, typer.Option("--grace", min=0, metavar="SECONDS", help="Stop grace period.")
    ] = 10.0,
) -> None:
    """Host the triggers (and execute the runs they start) until Ctrl-C or SIGTERM; the same
    as `batonflow worker --triggers`. Any number may run on PostgreSQL: one acts per tick."""
    with cli_errors():
        path = resolve_db(db, must_exist=False)
        ensure_cwd_on_path()
        if logging.getLogger("batonflow").level > logging.WARNING:
            configure_logging(logging.WARNING)
        hosted: list[Any] = []

        def ready(engine: bf.Engine) -> None:
            names = ", ".join(t.name for t in hosted) or "none configured"
            note(
                f"batonflow triggers {engine.owner}: hosting {names} on {_worker.where(path)}"
                f" (pid {os.getpid()}); stop with Ctrl-C or SIGTERM"
            )

        options = _worker.TriggerOptions(tuple(documents or ()), hosted.extend)
        asyncio.run(
            _worker.work(
                path, options={"poll_interval": poll}, grace=grace, ready=ready, triggers=options
            )
        )
        note("batonflow triggers: stopped")


def _act(db: str, token: str | None, action: Any) -> Any:
    path = resolve_db(db, must_exist=True)

    async def go() -> Any:
        async with _ops.opened_store(path) as store:
            me = await _setup.acting(store, token, "trigger.operate")
            return await action(store, me, time.time())

    return asyncio.run(go())


def _policy(text: str) -> Any:
    from batonflow.triggers import Overlap as Policy

    try:
        return Policy(text)
    except ValueError:
        choices = ", ".join(p.value for p in Policy)
        raise bf.ConfigError(f"--overlap {text!r}: expected one of {choices}") from None


def _instant(text: str, option: str) -> float:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise bf.ConfigError(
            f"{option} {text!r}: expected an ISO 8601 instant such as 2026-03-29T01:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat()
