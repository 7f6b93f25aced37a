"""The options every command shares, declared once: ``--db``, ``--json``, ``--token``."""

from __future__ import annotations

from typing import Annotated

import typer

from batonflow.cli._io import DB_ENV

__all__ = ["AsJson", "Db", "Token"]

Db = Annotated[
    str,
    typer.Option(
        "--db",
        envvar=DB_ENV,
        metavar="PATH|URL",
        help="The database holding the runs: a SQLite file (or sqlite:/// URL), or a"
        " postgresql:// URL.",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="BATONFLOW_TOKEN",
        metavar="TOKEN",
        help="Act as this identity (see `batonflow identity`); needed once the database has"
        " identities.",
        show_envvar=True,
    ),
]
