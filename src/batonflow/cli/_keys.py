"""``batonflow keys``: the master key and reference secret kept outside the database."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Annotated, cast

import typer

from batonflow.cli import _setup
from batonflow.cli._io import DEFAULT_DB, cli_errors, note, print_json, resolve_db
from batonflow.cli._ops import opened_store
from batonflow.cli._options import AsJson, Db, Token
from batonflow.governance._key_admin import KeyChange, migrate_keys, rotate_keys
from batonflow.governance._keys import KeyFile, MasterKeys
from batonflow.store import Store

keys_app = typer.Typer(
    help="The keys that open data subjects' data: kept outside the database (docs/security.md).",
    no_args_is_help=True,
)


@keys_app.command("generate")
def generate() -> None:
    """Print new keys (a master key and a reference secret) for an environment variable or a
    secret manager: [governance.keys] env = "VARIABLE"."""
    sys.stdout.write(MasterKeys.generate().to_text() + "\n")


@keys_app.command("migrate")
def migrate(db: Db = DEFAULT_DB, token: Token = None, as_json: AsJson = False) -> None:
    """Move the keys a database made by an earlier batonflow keeps inside it to the configured
    key file (or variable), wrapping every subject key; recorded on the audit trail."""
    with cli_errors():
        path = resolve_db(db, must_exist=True)
        change = asyncio.run(_migrate(path, token))
    _report(change, as_json)


async def _migrate(db: str, token: str | None) -> KeyChange:
    provider = _setup.current().key_provider(db)
    async with opened_store(db) as store:
        actor = await _setup.acting(store, token, "policy.change")
        target = _key_database(store)
        return await migrate_keys(target, provider, actor=actor, now=time.time())


@keys_app.command("rotate")
def rotate(
    new_key_file: Annotated[
        Path,
        typer.Option(
            "--new-key-file",
            metavar="FILE",
            help="Where the new master key goes (created 0600; must not exist, unless"
            " finishing a rotation cut short).",
        ),
    ],
    db: Db = DEFAULT_DB,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Re-wrap every subject key under a new master key; then point [governance.keys] file at
    the new file and destroy the old one. The reference secret stays (references are chained)."""
    with cli_errors():
        path = resolve_db(db, must_exist=True)
        change = asyncio.run(_rotate(path, new_key_file, token))
    _report(change, as_json)
    if not as_json:
        note(f'now set [governance.keys] file = "{new_key_file}" and destroy the old key file')


async def _rotate(db: str, new_key_file: Path, token: str | None) -> KeyChange:
    provider = _setup.current().key_provider(db)
    async with opened_store(db) as store:
        actor = await _setup.acting(store, token, "policy.change")
        target = _key_database(store)
        return await rotate_keys(
            target, provider, KeyFile(new_key_file), actor=actor, now=time.time()
        )


def _key_database(store: Store) -> Store:
    """Where the subject keys are kept: a separate key store, else the runs' own database
    (under the sealing wrapper)."""
    separate = getattr(store, "key_store", None)
    return cast(Store, separate if separate is not None else getattr(store, "inner", store))


def _report(change: KeyChange, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "outcome": change.outcome,
                "provider": change.provider,
                "wrapped": change.wrapped,
                "fingerprint": change.fingerprint,
            }
        )
    elif change.outcome == "nothing":
        note(f"nothing to do: the keys already live in the {change.provider}")
    else:
        note(
            f"{change.outcome}: {change.wrapped} subject key(s) wrapped under master key"
            f" {change.fingerprint}, kept in the {change.provider}"
        )
