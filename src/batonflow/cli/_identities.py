"""``batonflow identity ...`` and ``batonflow token ...``: who may act, and their tokens.

While the database has no identities, commands act as ``local:<os user>`` (an admin): make the
first identity an admin, then issue yourself a token and pass it with ``--token`` or
``BATONFLOW_TOKEN``. A token is printed once, on stdout, when it is created; the database keeps
only its SHA-256.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal, TypeVar

import typer
from rich.table import Table

from batonflow.cli._exit_codes import exit_code_for
from batonflow.cli._io import (
    DEFAULT_DB,
    cli_errors,
    console,
    note,
    print_error,
    print_json,
    resolve_db,
)
from batonflow.cli._ops import opened_store
from batonflow.cli._options import AsJson, Db, Token
from batonflow.cli._render import when
from batonflow.errors import AccessDenied, ApprovalRefused
from batonflow.governance._identity import (
    ROLES,
    TOKEN_ENV,
    Identity,
    IssuedToken,
    TokenInfo,
    cli_identity,
    create_identity,
    create_token,
    has_identities,
    list_identities,
    list_tokens,
    revoke_token,
    set_identity_disabled,
)
from batonflow.governance._passwords import set_password
from batonflow.store import Store

__all__ = [
    "identity_app",
    "read",
    "refusals",
    "run_as",
    "token_app",
]

T = TypeVar("T")

identity_app = typer.Typer(
    help="Identities (users and services) and their roles and groups.", no_args_is_help=True
)
token_app = typer.Typer(
    help="Tokens that let a command act as an identity (--token or BATONFLOW_TOKEN).",
    no_args_is_help=True,
)


@contextmanager
def refusals() -> Iterator[None]:
    """Report a refused action plainly (with how to act as someone else), exiting with the
    table's FORBIDDEN code. Use inside ``cli_errors()``."""
    try:
        yield
    except (AccessDenied, ApprovalRefused) as exc:
        hints = []
        if isinstance(exc, AccessDenied) and "--token" not in str(exc):
            hints.append(f"pass --token or set {TOKEN_ENV} to act as another identity")
        print_error(str(exc), *hints)
        raise typer.Exit(int(exit_code_for(exc))) from None


def run_as(db: str, token: str | None, work: Callable[[Store, Identity], Awaitable[T]]) -> T:
    """Open the database, resolve who acts (:func:`cli_identity`), and do ``work``."""

    async def go() -> T:
        async with opened_store(db) as store:
            return await work(store, await cli_identity(store, token))

    return asyncio.run(go())


def read(db: str, work: Callable[[Store], Awaitable[T]]) -> T:
    async def go() -> T:
        async with opened_store(db) as store:
            return await work(store)

    return asyncio.run(go())


# -- identities ---------------------------------------------------------------------------------


@identity_app.command("create")
def identity_create(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="alice, or ci-bot.", show_default=False)
    ],
    role: Annotated[
        list[str] | None,
        typer.Option("--role", "-r", help=f"A role: {', '.join(ROLES)} (repeatable)."),
    ] = None,
    group: Annotated[
        list[str] | None,
        typer.Option("--group", "-g", help="A group, e.g. an approver group (repeatable)."),
    ] = None,
    email: Annotated[
        str | None,
        typer.Option("--email", help="Their e-mail address (separation of duties matches it)."),
    ] = None,
    service: Annotated[bool, typer.Option("--service", help="A program, not a person.")] = False,
    issue_token: Annotated[
        bool,
        typer.Option(
            "--issue-token",
            help="Also issue a token for it, printed once on stdout (always done for the"
            " first identity: afterwards nothing can be changed without a token).",
        ),
    ] = False,
    db: Db = DEFAULT_DB,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Create an identity (admins only; the first one must be an admin, and gets a token)."""
    kind: Literal["user", "service"] = "service" if service else "user"

    async def work(store: Store, actor: Identity) -> tuple[Identity, IssuedToken | None]:
        first = not await has_identities(store)
        now = time.time()
        made = await create_identity(
            store, name, actor=actor, now=now, kind=kind, roles=role or (), groups=group or (),
            email=email,
        )  # fmt: skip
        if not (issue_token or first):
            return made, None
        return made, await create_token(store, name, actor=actor, now=now, label="created with it")

    with cli_errors(), refusals():
        path = resolve_db(db, must_exist=False)
        made, issued = run_as(path, token, work)
    if as_json:
        print_json({**made.to_dict(), "token": issued.token if issued else None})
        return
    if issued is None:
        console().print(f"created {made.kind} {made.name}", markup=False)
        note(f"issue a token with `batonflow token create {made.name}`")
        return
    print(issued.token)
    note(
        f"created {made.kind} {made.name} with token {issued.info.id}, shown above this once"
        f" and not stored (only its hash is); act with --token or {TOKEN_ENV}"
    )


@identity_app.command("list")
def identity_list(db: Db = DEFAULT_DB, as_json: AsJson = False) -> None:
    """List identities with their roles and groups."""
    with cli_errors():
        path = resolve_db(db, must_exist=True)
        found = read(path, list_identities)
    if as_json:
        print_json([i.to_dict() for i in found])
        return
    if not found:
        console().print("no identities: commands act as the local user, with admin rights")
        return
    table = Table()
    for column in ("name", "kind", "roles", "groups", "email", "created", "status"):
        table.add_column(column)
    for i in found:
        table.add_row(
            i.name, i.kind, ", ".join(i.roles) or "-", ", ".join(i.groups) or "-",
            i.email or "-", when(i.created_at), "disabled" if i.disabled else "active",
        )  # fmt: skip
    console().print(table)


def _switch(name: str, disabled: bool, db: str, token: str | None, as_json: bool) -> None:
    with cli_errors(), refusals():
        path = resolve_db(db, must_exist=True)
        changed = run_as(
            path, token,
            lambda store, actor: set_identity_disabled(
                store, name, disabled, actor=actor, now=time.time()
            ),
        )  # fmt: skip
    if as_json:
        print_json(changed.to_dict())
    else:
        console().print(f"{name} is {'disabled' if disabled else 'enabled'}", markup=False)


@identity_app.command("disable")
def identity_disable(
    name: Annotated[str, typer.Argument(metavar="NAME", show_default=False)],
    db: Db = DEFAULT_DB,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Disable an identity: its tokens stop working and it can no longer decide approvals."""
    _switch(name, True, db, token, as_json)


@identity_app.command("enable")
def identity_enable(
    name: Annotated[str, typer.Argument(metavar="NAME", show_default=False)],
    db: Db = DEFAULT_DB,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Enable a disabled identity again."""
    _switch(name, False, db, token, as_json)


@identity_app.command("set-password")
def identity_set_password(
    name: Annotated[str, typer.Argument(metavar="NAME", show_default=False)],
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="Read the password from the first line of standard input instead of asking.",
        ),
    ] = False,
    db: Db = DEFAULT_DB,
    token: Token = None,
) -> None:
    """Set the password NAME signs in to the web console with (admins for anyone, anyone for
    themself; at least 12 characters). Clears a lockout after failed sign-ins."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    with cli_errors(), refusals():
        path = resolve_db(db, must_exist=True)
        run_as(
            path, token,
            lambda store, actor: set_password(store, name, password, actor=actor, now=time.time()),
        )  # fmt: skip
    console().print(f"{name} can sign in to the console with this password", markup=False)


# -- tokens -------------------------------------------------------------------------------------


def _token_doc(info: TokenInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "identity": info.identity,
        "label": info.label,
        "created_at": info.created_at,
        "revoked": info.revoked,
        "revoked_at": info.revoked_at,
    }


@token_app.command("create")
def token_create(
    identity: Annotated[
        str, typer.Argument(metavar="IDENTITY", help="Whose token.", show_default=False)
    ],
    label: Annotated[
        str | None, typer.Option("--label", "-l", help="What it is for (laptop, CI).")
    ] = None,
    db: Db = DEFAULT_DB,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Issue a token (admins for anyone, anyone for themself). It is printed once, here."""
    with cli_errors(), refusals():
        path = resolve_db(db, must_exist=True)
        issued = run_as(
            path, token,
            lambda store, actor: create_token(
                store, identity, actor=actor, now=time.time(), label=label
            ),
        )  # fmt: skip
    if as_json:
        print_json({"token": issued.token, **_token_doc(issued.info)})
        return
    print(issued.token)
    note(
        f"token {issued.info.id} for {identity}: shown this once and not stored (only its hash"
        f" is); use it with --token or {TOKEN_ENV}"
    )


@token_app.command("list")
def token_list(
    identity: Annotated[
        str | None, typer.Argument(metavar="[IDENTITY]", help="Only this identity's tokens.")
    ] = None,
    db: Db = DEFAULT_DB,
    as_json: AsJson = False,
) -> None:
    """List tokens by id (the start of their hash), never the tokens themselves."""
    with cli_errors():
        path = resolve_db(db, must_exist=True)
        found = read(path, lambda store: list_tokens(store, identity))
    if as_json:
        print_json([_token_doc(t) for t in found])
        return
    if not found:
        console().print("no tokens", markup=False)
        return
    table = Table()
    for column in ("id", "identity", "label", "created", "status"):
        table.add_column(column)
    for t in found:
        status = f"revoked {when(t.revoked_at)}" if t.revoked else "active"
        table.add_row(t.id, t.identity, t.label or "-", when(t.created_at), status)
    console().print(table)


@token_app.command("revoke")
def token_revoke(
    which: Annotated[
        str,
        typer.Argument(
            metavar="TOKEN|ID", help="The token, or its id from `token list`.", show_default=False
        ),
    ],
    db: Db = DEFAULT_DB,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Revoke a token at once (admins any token, anyone their own)."""
    with cli_errors(), refusals():
        path = resolve_db(db, must_exist=True)
        info = run_as(
            path, token,
            lambda store, actor: revoke_token(store, which, actor=actor, now=time.time()),
        )  # fmt: skip
    if as_json:
        print_json(_token_doc(info))
    else:
        console().print(f"token {info.id} of {info.identity} is revoked", markup=False)
