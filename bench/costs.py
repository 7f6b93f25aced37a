"""What a workflow costs inside its process: SQL statements and JSON encodes, counted in the
timed window of the counting pass (``BENCH_COSTS=1``, set by run.py for its strace pass only, as
the hooks slow the process down a little).

The hooks are installed when ``harness`` is imported, before the system under test opens a
connection: every ``sqlite3.connect`` (batonflow, LangGraph's savers, aiosqlite, SQLAlchemy's
pysqlite dialect for DBOS) gets a trace callback, and ``json.JSONEncoder.encode`` (what every
``json.dumps`` ends in) counts its calls. The counts are the same for every system: what SQLite
was asked to run, whoever asked.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sqlite3.dbapi2
import threading
from collections import Counter
from typing import Any

ENABLED = os.environ.get("BENCH_COSTS") == "1"

_lock = threading.Lock()
_statements: Counter[str] = Counter()  # by first keyword: SELECT, INSERT, COMMIT, ...
_encodes = [0]
_marks: dict[str, tuple[Counter[str], int]] = {}


def _on_statement(sql: str) -> None:
    if sql.startswith("--"):  # a trigger's body, reported as a comment: not a statement asked for
        return
    keyword = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"
    with _lock:
        _statements[keyword] += 1


def _install() -> None:
    original_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn: sqlite3.Connection = original_connect(*args, **kwargs)
        conn.set_trace_callback(_on_statement)
        return conn

    sqlite3.connect = connect  # type: ignore[assignment]
    sqlite3.dbapi2.connect = connect  # type: ignore[assignment]  # SQLAlchemy's pysqlite uses it

    original_encode = json.JSONEncoder.encode

    def encode(self: json.JSONEncoder, o: Any) -> str:
        with _lock:
            _encodes[0] += 1
        return original_encode(self, o)

    json.JSONEncoder.encode = encode  # type: ignore[method-assign]


def mark(name: str) -> None:
    """Remember the counters at a window mark (harness calls it with its marker fsyncs)."""
    if ENABLED:
        with _lock:
            _marks[name] = (Counter(_statements), _encodes[0])


def window(start: str, end: str, n: int) -> dict[str, Any] | None:
    """Counts per workflow between two marks, or None when not counting."""
    if not ENABLED or start not in _marks or end not in _marks:
        return None
    (s0, e0), (s1, e1) = _marks[start], _marks[end]
    by_kind = {k: (s1[k] - s0[k]) / n for k in sorted(s1) if s1[k] - s0[k] > 0}
    return {
        "statements_per_wf": sum(by_kind.values()),
        "statements_by_kind_per_wf": by_kind,
        "commits_per_wf": by_kind.get("COMMIT", 0.0) + by_kind.get("END", 0.0),
        "json_encodes_per_wf": (e1 - e0) / n,
    }


if ENABLED:
    _install()
