"""The physical ceiling of a durable sequential workflow on this disk, measured in the same run.

One-row commits in a loop on a fresh SQLite file in the benchmark's own directory, with the
settings batonflow uses (``journal_mode=WAL``, ``synchronous=FULL``: every commit fsyncs the
WAL). No engine can commit faster than that on this disk through SQLite, so commits per second
divided by the commits one workflow needs is the most workflows per second a sequential run can
reach; the report gives batonflow's sequential figure as a share of it.
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any


def one_row_commits(folder: Path, seconds: float = 3.0, most: int = 5000) -> dict[str, Any]:
    """Commit one small row at a time for ``seconds`` (at most ``most`` commits)."""
    path = folder / "ceiling.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, value TEXT NOT NULL)")
        for i in range(20):  # warm the file and the cache
            conn.execute("INSERT INTO t (value) VALUES (?)", (f"warm {i}",))
        times: list[float] = []
        began = time.perf_counter()
        while len(times) < most and time.perf_counter() - began < seconds:
            t = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (value) VALUES (?)", ("row",))
            conn.execute("COMMIT")
            times.append(time.perf_counter() - t)
        elapsed = time.perf_counter() - began
        settings = {
            "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
            "synchronous": conn.execute("PRAGMA synchronous").fetchone()[0],
        }
    finally:
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return {
        "commits": len(times),
        "commits_per_s": len(times) / elapsed,
        "commit_p50_ms": statistics.median(times) * 1000,
        **settings,
    }


def best(*measured: dict[str, Any] | None) -> dict[str, Any] | None:
    """The higher of the measurements (taken before and after the systems ran), with both rates."""
    ok = [m for m in measured if m]
    if not ok:
        return None
    top = max(ok, key=lambda m: m["commits_per_s"])
    return {**top, "all_commits_per_s": [round(m["commits_per_s"], 1) for m in ok]}


def against(ceiling: dict[str, Any] | None, sequential: dict[str, Any]) -> dict[str, Any] | None:
    """The ceiling in workflows/s for batonflow's commits per workflow, and the share reached."""
    if not ceiling or "wf_per_s" not in sequential:
        return None
    commits = sequential.get("extra", {}).get("commits_per_wf") or sequential.get("costs", {}).get(
        "commits_per_wf"
    )
    if not commits:
        return None
    limit = ceiling["commits_per_s"] / commits
    return {
        "commits_per_wf": commits,
        "ceiling_wf_per_s": limit,
        "share": sequential["wf_per_s"] / limit,
    }
