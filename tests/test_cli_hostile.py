"""The CLI on hostile surroundings: a SQLite file of another program, an older schema for a
read-only command, a binary or FIFO --config, a workflow module that exits at import. Each is a
one-line message with a documented exit code, never a traceback, and nothing is changed."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import batonflow as bf
from batonflow.cli import ExitCode, app
from batonflow.store._sqlite_schema import MIGRATIONS


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    logger = logging.getLogger("batonflow")
    saved = (logger.level, list(logger.handlers), logger.propagate)
    yield
    logger.setLevel(saved[0])
    logger.handlers[:] = saved[1]
    logger.propagate = saved[2]


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def foreign(tmp_path: Path) -> Path:
    path = tmp_path / "notes.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
        conn.execute("INSERT INTO notes VALUES ('mine')")
    return path


@pytest.mark.parametrize("command", [["list"], ["show", "abc"], ["audit", "verify"]])
def test_a_read_only_command_leaves_a_foreign_sqlite_file_alone(
    foreign: Path, command: list[str]
) -> None:
    before = digest(foreign)
    result = cli(*command, "--db", str(foreign))
    assert result.exit_code == ExitCode.STORE_ERROR
    assert "not a batonflow database (tables: notes); it was left unchanged" in result.output
    assert digest(foreign) == before


def test_a_writing_command_refuses_a_foreign_sqlite_file_too(foreign: Path) -> None:
    before = digest(foreign)
    result = cli("cancel", "abc", "--db", str(foreign))
    assert result.exit_code == ExitCode.STORE_ERROR
    assert "is a SQLite database but not a batonflow store" in result.output
    assert digest(foreign) == before


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"\x00\x01 not a database " * 64)
    result = cli("list", "--db", str(junk))
    assert result.exit_code == ExitCode.STORE_ERROR
    assert "cannot open it as a batonflow database: file is not a database" in result.output


def test_a_read_only_command_does_not_upgrade_an_older_database(tmp_path: Path) -> None:
    path = tmp_path / "old.db"

    async def make() -> None:
        async with bf.Engine(path):
            pass

    asyncio.run(make())
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) - 1}")
    result = cli("list", "--db", str(path))
    assert result.exit_code == ExitCode.USAGE
    assert "A read-only command does not upgrade it" in result.output
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) - 1


def test_a_binary_config_is_a_message(tmp_path: Path) -> None:
    config = tmp_path / "batonflow.toml"
    config.write_bytes(b"\xff\xfe\x00\x01binary")
    result = cli("--config", str(config), "list", "--db", str(tmp_path / "x.db"))
    assert result.exit_code == ExitCode.USAGE
    assert "not UTF-8 text (byte 0); is it a binary file?" in result.output


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")
def test_a_fifo_config_is_refused_without_blocking(tmp_path: Path) -> None:
    config = tmp_path / "batonflow.toml"
    os.mkfifo(config)
    result = cli("--config", str(config), "list", "--db", str(tmp_path / "x.db"))
    assert result.exit_code == ExitCode.USAGE
    assert "not a regular file" in result.output


def test_a_module_that_exits_at_import_is_reported(tmp_path: Path) -> None:
    module = tmp_path / "exits.py"
    module.write_text("import sys\nsys.exit(3)\n")
    result = cli("run", f"{module}:flow", "--db", str(tmp_path / "r.db"))
    assert result.exit_code == ExitCode.USAGE
    assert "called sys.exit(3); a workflow module must not exit when imported" in result.output


@pytest.mark.parametrize(
    "command",
    [["show", b"ab\xffcd"], ["cancel", b"\xff"], ["list", "--workflow", b"\xfe"],
     ["audit", "export", "--run", b"\xff"]],
)  # fmt: skip
def test_an_argument_that_is_not_utf8_is_a_usage_error(
    tmp_path: Path, command: list[str | bytes]
) -> None:
    """Bytes a terminal passes that are not UTF-8 reach Python as lone surrogates, which the
    store cannot encode: the command says which argument, it is no bug report (real argv,
    so a subprocess)."""
    import subprocess
    import sys

    db = tmp_path / "runs.db"

    async def make() -> None:
        async with bf.Engine(db):
            pass

    asyncio.run(make())
    binary = Path(sys.executable).parent / "batonflow"
    argv = [str(binary), *command, "--db", str(db)]
    result = subprocess.run(argv, capture_output=True, timeout=120, check=False)
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == ExitCode.USAGE, stderr
    assert "holds bytes that are not UTF-8 text" in stderr
    assert "\\udc" in stderr  # the argument, shown with escapes
    assert "this is a bug" not in stderr
    assert "Traceback" not in stderr


def test_a_number_past_pythons_digit_limit_is_refused_where_it_is(tmp_path: Path) -> None:
    """Python reads at most 4,300 digits of an integer from text and says so with a bare
    ValueError; the input check refuses such a number first, with its place and the limit.
    The same digits in a string are text, and fine."""
    document = tmp_path / "echo.yaml"
    document.write_text(
        "document: {dsl: '1.0.3', namespace: t, name: echo, version: '1.0.0'}\n"
        "do:\n- x:\n    set: {v: '${ . }'}\n"
    )
    db = str(tmp_path / "runs.db")
    digits = "9" * 5000
    result = cli("run", str(document), "--db", db, "--input", f'{{"n": {digits}}}')
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "refused at line 1 column 7: a number has 5000 digits; the limit is 4300" in (
        result.output
    )
    assert "this is a bug" not in result.output
    result = cli("run", str(document), "--db", db, "--input", f'{{"n": "{digits}"}}', "--json")
    assert result.exit_code == 0, result.output
    assert digits in result.output
