"""``batonflow identity set-password``: admins set anyone's, people their own; a short one is
refused with exit 2 and nothing stored; the hash, not the password, is what the store keeps."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import batonflow as bf
from batonflow.cli import app
from batonflow.governance._passwords import PASSWORD_KIND, check_password

runner = CliRunner()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("BATONFLOW_TOKEN", "BATONFLOW_DB", "BATONFLOW_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def cli(*args: str, stdin: str | None = None) -> Result:
    return runner.invoke(app, list(args), input=stdin)


def _stored(db: str, name: str, password: str) -> tuple[str | None, bool]:
    async def read() -> tuple[str | None, bool]:
        store = bf.open_store(db)
        await store.open()
        try:
            record = await store.get_record(PASSWORD_KIND, name)
            try:
                await check_password(store, name, password, now=1.0)
                works = True
            except bf.AccessDenied:
                works = False
            return record, works
        finally:
            await store.close()

    return asyncio.run(read())


def test_set_password_from_stdin_as_admin_and_as_oneself(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    ann = cli("identity", "create", "ann", "--role", "admin", "--db", db).stdout.strip()
    made = cli("identity", "create", "carol", "--role", "viewer", "--issue-token", "--db", db,
               "--token", ann)  # fmt: skip
    carol = made.stdout.strip()
    done = cli("identity", "set-password", "carol", "--password-stdin", "--db", db,
               "--token", ann, stdin="a long enough secret\n")  # fmt: skip
    assert done.exit_code == 0, done.output
    record, works = _stored(db, "carol", "a long enough secret")
    assert record is not None
    assert "a long enough secret" not in record
    assert works

    short = cli("identity", "set-password", "carol", "--password-stdin", "--db", db,
                "--token", carol, stdin="short\n")  # fmt: skip
    assert short.exit_code == 2
    assert "at least 12 characters" in short.output
    assert _stored(db, "carol", "a long enough secret")[1]

    other = cli("identity", "set-password", "ann", "--password-stdin", "--db", db,
                "--token", carol, stdin="carol sets ann's password\n")  # fmt: skip
    assert other.exit_code != 0
    assert "identity.manage" in other.output
    assert _stored(db, "ann", "carol sets ann's password") == (None, False)
