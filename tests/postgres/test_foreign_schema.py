"""A PostgreSQL schema that holds another program's tables is refused, never migrated.

The rule SQLite stores follow (tests/test_cli_hostile.py): read-only commands refuse a schema
that is not a batonflow store, or not one at this version, before anything is written there;
writing commands and ``bf.open_store`` refuse a foreign schema too. Each test has a scratch
schema of its own on the real server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psycopg
import pytest
from typer.testing import CliRunner, Result

import batonflow as bf
from batonflow.cli import ExitCode, app
from batonflow.store._postgres_schema import VERSION_TABLE
from conftest import PgSchemas


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def snapshot(admin_url: str, schema: str) -> list[tuple[str, str]]:
    """Every relation of the schema and each table's rows, as text: what a refusal must keep."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s ORDER BY c.relname",
                (schema,),
            )
        ]
        seen = []
        for name in names:
            kind = conn.execute(
                "SELECT relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND c.relname = %s",
                (schema, name),
            ).fetchone()
            rows = ""
            if kind is not None and kind[0] == "r":
                rows = repr(conn.execute(f'SELECT * FROM "{schema}"."{name}"').fetchall())
            seen.append((name, rows))
        return seen


@pytest.fixture
def scratch(pg_schemas: PgSchemas) -> Iterator[tuple[str, str]]:
    """(schema, store URL) of an empty schema of this test's own."""
    schema, url = pg_schemas.create()
    try:
        yield schema, url
    finally:
        pg_schemas.drop(schema)


@pytest.fixture
def foreign(scratch: tuple[str, str], pg_admin_url: str) -> tuple[str, str]:
    """A schema where some other application keeps its notes."""
    schema, url = scratch
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {schema}.notes (id SERIAL PRIMARY KEY, text TEXT)")
        conn.execute(f"INSERT INTO {schema}.notes (text) VALUES ('mine')")
    return schema, url


@pytest.mark.parametrize("command", [["list"], ["show", "abc"], ["audit", "verify"]])
def test_a_read_only_command_refuses_a_foreign_schema_and_leaves_it_alone(
    foreign: tuple[str, str], pg_admin_url: str, command: list[str]
) -> None:
    schema, url = foreign
    before = snapshot(pg_admin_url, schema)
    result = cli(*command, "--db", url)
    assert result.exit_code == ExitCode.STORE_ERROR, result.output
    assert f"schema '{schema}' holds tables that are not a batonflow store" in result.output
    assert "(notes)" in result.output
    assert "left unchanged" in result.output
    assert "Traceback" not in result.output
    assert snapshot(pg_admin_url, schema) == before


def test_a_writing_command_refuses_a_foreign_schema_too(
    foreign: tuple[str, str], pg_admin_url: str
) -> None:
    schema, url = foreign
    before = snapshot(pg_admin_url, schema)
    result = cli("cancel", "abc", "--db", url)
    assert result.exit_code == ExitCode.STORE_ERROR, result.output
    assert "not a batonflow store" in result.output
    assert snapshot(pg_admin_url, schema) == before


async def test_opening_a_store_on_a_foreign_schema_is_refused(
    foreign: tuple[str, str], pg_admin_url: str
) -> None:
    schema, url = foreign
    before = snapshot(pg_admin_url, schema)
    store = bf.open_store(url)
    with pytest.raises(bf.StoreError, match="not a batonflow store"):
        await store.open()
    assert snapshot(pg_admin_url, schema) == before


async def test_a_version_table_without_runs_is_foreign(
    scratch: tuple[str, str], pg_admin_url: str
) -> None:
    schema, url = scratch
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {schema}.{VERSION_TABLE} (only_row BOOLEAN PRIMARY KEY,"
            " version INTEGER NOT NULL)"
        )
        conn.execute(f"INSERT INTO {schema}.{VERSION_TABLE} VALUES (TRUE, 3)")
    store = bf.open_store(url)
    with pytest.raises(bf.StoreError, match="not a batonflow store"):
        await store.open()


def test_a_read_only_command_does_not_create_a_store_in_an_empty_schema(
    scratch: tuple[str, str], pg_admin_url: str
) -> None:
    schema, url = scratch
    result = cli("list", "--db", url)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "holds no batonflow store yet" in result.output
    assert snapshot(pg_admin_url, schema) == []


def test_a_batonflow_schema_opens_and_reads(scratch: tuple[str, str], pg_admin_url: str) -> None:
    schema, url = scratch

    async def open_twice() -> None:
        store = bf.open_store(url)
        await store.open()  # an empty schema becomes a store
        await store.close()
        again = bf.open_store(url)
        await again.open()  # and opens again: its own tables are no stranger's
        await again.close()

    asyncio.run(open_twice())
    result = cli("list", "--db", url)
    assert result.exit_code == 0, result.output
    assert {name for name, _ in snapshot(pg_admin_url, schema)} >= {"runs", VERSION_TABLE}


def test_a_read_only_command_does_not_upgrade_an_older_store(
    scratch: tuple[str, str], pg_admin_url: str
) -> None:
    schema, url = scratch

    async def create() -> None:
        store = bf.open_store(url)
        await store.open()
        await store.close()

    asyncio.run(create())
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f"UPDATE {schema}.{VERSION_TABLE} SET version = version - 1")
        (older,) = conn.execute(f"SELECT version FROM {schema}.{VERSION_TABLE}").fetchone() or (0,)
    result = cli("list", "--db", url)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "A read-only command does not upgrade it" in result.output
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        row = conn.execute(f"SELECT version FROM {schema}.{VERSION_TABLE}").fetchone()
    assert row == (older,)
