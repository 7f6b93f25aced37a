"""The insider test suite (docs/security.md): each attack performed on SQLite and PostgreSQL.

Every test gets a ``Site``: a configuration as an operator writes it (keys outside the database:
the key file beside a SQLite database, ``$BATONFLOW_KEYS`` for PostgreSQL), the sealed store it
builds, and a CLI runner that uses the same configuration.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import batonflow as bf
from batonflow.cli._app import app
from batonflow.configuration import Setup
from batonflow.governance._keys import KEYS_ENV, MasterKeys
from batonflow.governance._subjects import SealedStore
from batonflow.testing import FakeClock


@dataclass
class Site:
    """One deployment under attack: its database, configuration file and command line."""

    url: str
    config: Path
    clock: FakeClock
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        return not self.url.startswith("postgresql")

    def setup(self) -> Setup:
        return Setup.load(str(self.config))

    def configure(self, data: Mapping[str, Any]) -> None:
        """Rewrite the configuration file (TOML) with ``data``."""
        self.data = dict(data)
        self.config.write_text(_toml(self.data))

    @asynccontextmanager
    async def engine(
        self, *workflows: bf.Workflow[Any, Any], **options: Any
    ) -> AsyncIterator[bf.Engine]:
        setup = self.setup()
        store = setup.store(self.url)
        client = setup.client(store, self.clock)
        options.setdefault("clock", self.clock)
        try:
            async with setup.engine(store, workflows=workflows, http=client, **options) as engine:
                yield engine
        finally:
            await client.aclose()

    @asynccontextmanager
    async def store(self) -> AsyncIterator[SealedStore]:
        store = self.setup().store(self.url)
        await store.open()
        try:
            yield store
        finally:
            await store.close()

    def cli(self, *args: str, token: str | None = None) -> Result:
        extra = ["--token", token] if token else []
        return CliRunner().invoke(
            app, ["--config", str(self.config), *args, "--db", self.url, *extra]
        )

    def raw_bytes(self) -> bytes:
        """Everything the database holds, as an insider with the files (or a dump) reads it."""
        if self.is_sqlite:
            db = Path(self.url)
            return b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())
        import psycopg

        chunks = []
        with psycopg.connect(self.url) as conn:
            for table in ("runs", "steps", "attempts", "events", "audit", "records"):
                rows = conn.execute(f"SELECT * FROM {table}").fetchall()
                chunks.append(json.dumps(rows, default=str).encode())
        return b"".join(chunks)


def _toml(data: Mapping[str, Any], prefix: str = "") -> str:
    scalars = {k: v for k, v in data.items() if not isinstance(v, Mapping)}
    tables = {k: v for k, v in data.items() if isinstance(v, Mapping)}
    lines = [f"[{prefix}]"] if prefix and scalars else []
    lines += [f"{k} = {json.dumps(v)}" for k, v in scalars.items()]
    text = "\n".join(lines) + ("\n" if lines else "")
    for name, table in tables.items():
        text += _toml(table, f"{prefix}.{name}" if prefix else name)
    return text


@pytest.fixture(params=["sqlite", "postgres"])
def site(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    monkeypatch.delenv("BATONFLOW_TOKEN", raising=False)
    monkeypatch.delenv("BATONFLOW_CONFIG", raising=False)
    if request.param == "sqlite":
        url = str(tmp_path / "runs.db")
    else:
        url = request.getfixturevalue("pg_url")
        monkeypatch.setenv(KEYS_ENV, MasterKeys.generate().to_text())
    site = Site(url, tmp_path / "batonflow.toml", FakeClock())
    site.configure({})
    return site
