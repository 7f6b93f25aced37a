"""Reading what the user typed (JSON options, ``--db``, workflow references) and writing
results and errors: machine output on stdout, every error on stderr as ``error: ...``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import sqlite3
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TextIO

import typer
from rich.console import Console

import batonflow as bf
from batonflow import _limits
from batonflow.cli._exit_codes import ExitCode, exit_code_for

DEFAULT_DB = "batonflow.db"
DB_ENV = "BATONFLOW_DB"
DEBUG_ENV = "BATONFLOW_DEBUG"

# -- output ---------------------------------------------------------------------------------


def console() -> Console:
    """A console on the current stdout (wide enough not to cut run ids when piped)."""
    out = Console(highlight=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out = Console(highlight=False, width=120)
    return out


def tolerant_streams() -> None:
    """Text that UTF-8 cannot hold (a lone surrogate recorded before batonflow refused them)
    is printed as an escape (``\\ud800``) instead of ending the command."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if callable(reconfigure):
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")


def print_json(document: Any) -> None:
    """The one JSON document a ``--json`` command writes to stdout: always JSON, even for
    records written before values were bounded (an infinite time becomes a string, a lone
    surrogate an escape)."""
    try:
        text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(document), indent=2, ensure_ascii=False, allow_nan=False)
    sys.stdout.write(text.encode("utf-8", "backslashreplace").decode("utf-8") + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def print_error(message: str, *hints: str) -> None:
    sys.stderr.write(f"error: {message}\n")
    for hint in hints:
        sys.stderr.write(f"hint: {hint}\n")


def note(message: str) -> None:
    """A progress note for people (stderr, so stdout stays clean for pipes)."""
    sys.stderr.write(f"{message}\n")


def fail(exc: BaseException) -> NoReturn:
    """Report ``exc`` on stderr and exit with its code from the table."""
    code = exit_code_for(exc)
    undecodable = _undecodable_argument() if isinstance(exc, UnicodeError) else None
    if undecodable is not None:  # bytes from the command line, not a bug of ours
        print_error(
            f"the argument '{undecodable}' holds bytes that are not UTF-8 text",
            "batonflow reads ids, names and values as UTF-8; fix the terminal's encoding",
        )
        raise typer.Exit(int(ExitCode.USAGE))
    if code is ExitCode.INTERRUPTED:
        print_error("interrupted")
    elif code is ExitCode.INTERNAL:
        print_error(
            f"unexpected {type(exc).__name__}: {exc}",
            f"this is a bug in batonflow; set {DEBUG_ENV}=1 to see the traceback and report it",
        )
        if os.environ.get(DEBUG_ENV):
            traceback.print_exception(exc, file=sys.stderr)
    elif code is ExitCode.ENGINE_LOCKED:
        print_error(
            str(exc),
            "is `batonflow worker` running? `batonflow run --detach` hands it new runs",
        )
    else:
        print_error(str(exc) or type(exc).__name__)
    raise typer.Exit(int(code))


def _undecodable_argument() -> str | None:
    """The first command-line argument that is not UTF-8 (Python keeps its bytes as lone
    surrogates, which cannot be stored or printed), shown with escapes; None if all are."""
    for argument in sys.argv[1:]:
        try:
            argument.encode("utf-8")
        except UnicodeEncodeError:
            return argument.encode("utf-8", "backslashreplace").decode("utf-8")
    return None


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn every error into its exit code and a one-line message; never a traceback."""
    try:
        yield
    except typer.Exit:
        raise
    except BrokenPipeError:  # the reader stopped early (`| head`): not an error
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing more can be written
        raise typer.Exit(0) from None
    except (Exception, KeyboardInterrupt) as exc:
        fail(exc)


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


_handler = _StderrHandler()
_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))


def configure_logging(level: int) -> None:
    """Engine logs go to stderr at ``level`` (the summary already reports faulted runs)."""
    logger = logging.getLogger("batonflow")
    if _handler not in logger.handlers:
        logger.addHandler(_handler)
    logger.setLevel(level)
    logger.propagate = False


# -- input ----------------------------------------------------------------------------------


def read_json_option(value: str | None, option: str) -> Any:
    """``--input '{"a": 1}'``, ``--input @file.json`` or ``--input @-`` (stdin); None if absent."""
    if value is None:
        return None
    where = option
    text = value
    if value.startswith("@"):
        source = value[1:]
        where = f"{option} {value}"
        text = _read_source(source, option)

    def reject(constant: str) -> Any:
        raise bf.ConfigError(f"{where}: invalid JSON: {constant} is not a JSON value")

    try:
        _limits.check_json_text(text)
        return json.loads(text, parse_constant=reject)
    except _limits.TextLimitError as exc:
        line, column = _limits.line_column(text, exc.offset)
        raise bf.ConfigError(
            f"{where}: refused at line {line} column {column}: {exc.message}"
        ) from None
    except json.JSONDecodeError as exc:
        raise bf.ConfigError(
            f"{where}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


def _read_source(source: str, option: str) -> str:
    if not source:
        raise bf.ConfigError(f"{option}: '@' must be followed by a file name (or '-' for stdin)")
    if source == "-":
        return sys.stdin.read()
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise bf.ConfigError(f"{option}: no such file: {source}") from None
    except IsADirectoryError:
        raise bf.ConfigError(f"{option}: {source} is a directory, not a JSON file") from None
    except UnicodeDecodeError:
        raise bf.ConfigError(f"{option}: {source} is not UTF-8 text") from None
    except OSError as exc:
        raise bf.ConfigError(f"{option}: cannot read {source}: {exc.strerror}") from None


def resolve_db(db: str, *, must_exist: bool, read_only: bool = False) -> str:
    """Check ``--db`` before the store touches it; return what to give ``bf.open_store``.

    Commands that only read or change existing runs refuse a missing file rather than
    silently creating an empty database at a mistyped path. ``read_only`` commands (list,
    show, audit verify and export) also refuse a SQLite file they would have to change: one of
    another program, or of an older batonflow (opening it would upgrade its schema).
    """
    text = db.strip()
    if not text:
        raise bf.ConfigError(f"--db: empty database path (set --db or {DB_ENV})")
    if text.startswith("sqlite:///"):
        path = Path(text.removeprefix("sqlite:///"))
    elif text.startswith(("postgresql://", "postgres://")):
        if read_only:
            _check_postgres_readable(text)
        return text
    elif "://" in text:
        return text  # bf.open_store says which schemes it supports
    else:
        path = Path(text)
    if path.is_dir():
        raise bf.ConfigError(f"--db {db}: is a directory, expected a database file")
    if must_exist and not path.exists():
        raise bf.ConfigError(
            f"--db {db}: no such database file; start a run first, or point --db "
            f"(or {DB_ENV}) at an existing database"
        )
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise bf.ConfigError(f"--db {db}: {parent} is not a directory")
    if read_only and path.exists():
        _check_readable(db, path)
    return text


def _check_postgres_readable(url: str) -> None:
    """The store's own rule (``check_readable``): refuse another program's schema, an empty
    one, or an older store, before anything is created or migrated there."""
    try:
        from batonflow.store._postgres_conn import check_readable
    except ImportError:  # psycopg missing: bf.open_store explains which extra to install
        return
    asyncio.run(check_readable(url))


def _check_readable(db: str, path: Path) -> None:
    """Look at a SQLite file without writing to it (a read-only connection)."""
    from batonflow.store._sqlite_schema import MIGRATIONS

    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise bf.StoreError(f"--db {db}: cannot open it as a batonflow database: {exc}") from None
    if "runs" not in tables:
        shown = ", ".join(sorted(tables)[:5]) or "none"
        raise bf.StoreError(
            f"--db {db}: not a batonflow database (tables: {shown}); it was left unchanged"
        )
    if version < len(MIGRATIONS):
        raise bf.ConfigError(
            f"--db {db}: the database has schema version {version}; this batonflow uses "
            f"{len(MIGRATIONS)}. A read-only command does not upgrade it: run a command that "
            "writes (`batonflow worker`, `batonflow run`) once to upgrade it"
        )


def ensure_cwd_on_path() -> None:
    """``batonflow run mymodule:flow`` imports ./mymodule.py, as ``python -m`` would."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)


def load_workflow(ref: str) -> bf.Workflow[Any, Any]:
    """``bf.load_workflow`` that also reports errors raised by importing the user's code."""
    ensure_cwd_on_path()
    try:
        return bf.load_workflow(ref)
    except bf.BatonflowError:
        raise
    except Exception as exc:
        raise bf.ConfigError(
            f"cannot load workflow {ref!r}: importing it raised {_describe(exc)}"
        ) from exc


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} ({exc.filename}, line {exc.lineno})"
    text = f"{type(exc).__name__}: {exc}"
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        text += f" ({frames[-1].filename}, line {frames[-1].lineno})"
    return text


@contextlib.contextmanager
def private_file(path: Path, newline: str | None = None) -> Iterator[TextIO]:
    """Open ``path`` for writing, created readable by its owner only (0600): exports hold
    personal data. An existing file is truncated and made 0600 too."""
    if path.is_dir():
        raise bf.ConfigError(f"--out {path}: is a directory, expected a file name")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as handle:
        yield handle
