"""What the PostgreSQL server did during one measured window: commits per WAL flush (from
``pg_stat_wal`` and ``pg_stat_database``) and how often sessions waited on a lock (sampling
``pg_stat_activity``).

``pg_stat_wal`` is for the whole server: on a server shared with other work, that work's WAL
writes and syncs count too, so the report says so next to the figure. Commits are the measured
database's own (``pg_stat_database.xact_commit``), read-only transactions included: PostgreSQL
keeps no separate count of the ones that wrote.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

SAMPLE_EVERY_S = 0.02


def snapshot(url: str, database: str) -> dict[str, float]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        wal = conn.execute(
            "SELECT wal_records, wal_fpi, wal_bytes, wal_write, wal_sync FROM pg_stat_wal"
        ).fetchone()
        commits = conn.execute(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = %s",
            (database,),
        ).fetchone()
    assert wal is not None
    assert commits is not None
    names = ("wal_records", "wal_fpi", "wal_bytes", "wal_write", "wal_sync")
    out = {name: float(value) for name, value in zip(names, wal, strict=True)}
    out["xact_commit"], out["xact_rollback"] = float(commits[0]), float(commits[1])
    return out


def deltas(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, Any]:
    d = {k: after[k] - before[k] for k in before}
    return {
        **{k: int(v) for k, v in d.items()},
        "commits_per_wf": d["xact_commit"] / n,
        "commits_per_wal_sync": d["xact_commit"] / d["wal_sync"] if d["wal_sync"] else None,
        "wal_syncs_per_wf": d["wal_sync"] / n,
        "wal_records_per_wf": d["wal_records"] / n,
        "wal_bytes_per_wf": d["wal_bytes"] / n,
    }


class LockSampler:
    """Samples, every 20 ms in a thread, the measured database's sessions that are running a
    statement, and which of them wait for a lock (``wait_event_type = 'Lock'``)."""

    def __init__(self, url: str, database: str) -> None:
        self._url, self._database = url, database
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.samples = 0
        self.active = 0
        self.waiting = 0
        self.events: Counter[str] = Counter()
        self.error: str | None = None

    def __enter__(self) -> LockSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self._url, autocommit=True) as conn:
                while not self._stop.is_set():
                    rows = conn.execute(
                        "SELECT wait_event_type, wait_event FROM pg_stat_activity"
                        " WHERE datname = %s AND state = 'active' AND pid <> pg_backend_pid()",
                        (self._database,),
                    ).fetchall()
                    self.samples += 1
                    self.active += len(rows)
                    for kind, event in rows:
                        if kind == "Lock":
                            self.waiting += 1
                            self.events[str(event)] += 1
                    time.sleep(SAMPLE_EVERY_S)
        except Exception as exc:  # a measurement; the run itself goes on
            self.error = f"{type(exc).__name__}: {exc}"

    def result(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "active_sessions_mean": self.active / self.samples if self.samples else None,
            "lock_wait_share": self.waiting / self.active if self.active else None,
            "lock_waits_mean": self.waiting / self.samples if self.samples else None,
            "lock_events": dict(self.events.most_common()),
            **({"error": self.error} if self.error else {}),
        }
