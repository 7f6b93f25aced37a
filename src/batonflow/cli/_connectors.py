"""``batonflow connector list|disable|enable``: the kill switch for an outside service.

The switches live in the runs' database, so a running ``batonflow worker`` sees a change
within a few seconds: runs that need a disabled connector wait (they neither fail nor skip the
call) and carry on once it is enabled again.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from rich.table import Table

from batonflow.cli import _ops, _render, _setup
from batonflow.cli._io import (
    DEFAULT_DB,
    cli_errors,
    console,
    note,
    print_json,
    resolve_db,
)
from batonflow.cli._options import AsJson, Db, Token
from batonflow.governance._connectors import (
    ConnectorState,
    ConnectorSwitches,
    check_switchable,
)

__all__ = ["connector_app"]

connector_app = typer.Typer(
    help="Connector and model-provider kill switches: runs that need a disabled connector wait"
    " until it is enabled again.",
    no_args_is_help=True,
)

Name = Annotated[
    str,
    typer.Argument(
        metavar="NAME",
        help="A provider name, a connector name from the configuration (governance.connectors),"
        " or a host name.",
        show_default=False,
    ),
]


@connector_app.command("list")
def list_connectors(db: Db = DEFAULT_DB, as_json: AsJson = False) -> None:
    """List connectors that have been switched, and their state."""
    with cli_errors():
        path = resolve_db(db, must_exist=True)
        states = asyncio.run(_list(path))
    if as_json:
        print_json([s.to_dict() for s in states])
        return
    if not states:
        note("no connector has ever been disabled; every connector is enabled")
        return
    table = Table("NAME", "STATE", "SINCE", "BY", "REASON", box=None, pad_edge=False)
    for s in states:
        state = "[green]enabled[/]" if s.enabled else "[bold red]disabled[/]"
        table.add_row(s.name, state, _render.when(s.changed_at), s.actor or "-", s.reason or "")
    console().print(table)


@connector_app.command()
def disable(
    name: Name,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why; recorded in the audit trail.")
    ] = None,
    token: Token = None,
    db: Db = DEFAULT_DB,
    as_json: AsJson = False,
) -> None:
    """Switch a connector off: runs that call it wait until `batonflow connector enable`."""
    with cli_errors():
        path = resolve_db(db, must_exist=True)
        state, changed = asyncio.run(_switch(path, name, token, False, reason))
    _report(state, changed, as_json, db)


@connector_app.command()
def enable(name: Name, token: Token = None, db: Db = DEFAULT_DB, as_json: AsJson = False) -> None:
    """Switch a connector back on: waiting runs carry on at their next retry."""
    with cli_errors():
        path = resolve_db(db, must_exist=True)
        state, changed = asyncio.run(_switch(path, name, token, True, None))
    _report(state, changed, as_json, db)


async def _list(path: str) -> list[ConnectorState]:
    async with _ops.opened_store(path) as store:
        return await ConnectorSwitches(store).list()


async def _switch(
    path: str, name: str, token: str | None, enabled: bool, reason: str | None
) -> tuple[ConnectorState, bool]:
    _check_name(name)
    async with _ops.opened_store(path) as store:
        actor = await _setup.acting(store, token, "connector.switch")
        switches = ConnectorSwitches(store)
        if enabled:
            return await switches.enable(name, actor)
        return await switches.disable(name, actor, reason)


def _check_name(name: str) -> None:
    check_switchable(name, _setup.current().egress()[1].names())


def _report(state: ConnectorState, changed: bool, as_json: bool, db: str) -> None:
    if as_json:
        document: dict[str, Any] = {**state.to_dict(), "changed": changed}
        print_json(document)
        return
    out = console()
    verb = "enabled" if state.enabled else "disabled"
    if not changed:
        since = f" by {state.actor} at {_render.when(state.changed_at)}" if state.actor else ""
        why = f" ({state.reason})" if state.reason else ""
        out.print(
            f"connector {state.name!r} is already {verb}{since}{why}; nothing changed", markup=False
        )
        return
    why = f" ({state.reason})" if state.reason else ""
    out.print(f"{verb} connector {state.name!r} as {state.actor}{why}", markup=False)
    if state.enabled:
        note("runs waiting for it carry on at their next retry, within about 20 seconds")
    else:
        note(
            "runs that call it now wait, without failing, until"
            f" `batonflow connector enable {state.name}{_render.db_flag(db)}`"
        )
