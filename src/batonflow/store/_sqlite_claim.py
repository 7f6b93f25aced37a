"""Claiming runs on SQLite: started runs (due timers, delivered events) before new ones, and
the limits of named queues.

Only one engine executes runs on a SQLite file (the engine lock), and claims run on the writer
thread one at a time, so a queue's global and per-worker limits are the same thing here: count
its live runs (and recent starts, for a rate limit), then claim within what is left.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from batonflow.store._model import QueueLimits, RunRecord
from batonflow.store._rows import RUN_COLS, run_record

_RUNNABLE = (
    "(status='pending' OR (status='waiting' AND wake_at<=:now)"
    " OR (status='running' AND lease_until<:now AND owner IS NOT :owner))"
)


def claim(
    conn: sqlite3.Connection,
    params: dict[str, Any],
    limit: int,
    queues: Mapping[str, QueueLimits],
    serve: Sequence[str] | None,
) -> list[RunRecord]:
    """Claim up to ``limit`` runs: limited queues first (within their limits), then the rest.

    ``params``: ``owner``, ``now`` and ``lease_until``.
    """
    limited = [name for name, limits in queues.items() if limits.limited]
    taken: list[RunRecord] = []
    for name in limited:
        if serve is not None and name not in serve:
            continue
        if len(taken) >= limit:
            return taken
        taken.extend(_claim_queue(conn, params, limit - len(taken), name, queues[name]))
    room = limit - len(taken)
    if room <= 0:
        return taken
    where, extra = "TRUE", {}
    if limited:
        marks = ",".join(f":l{i}" for i in range(len(limited)))
        where = f"(queue IS NULL OR queue NOT IN ({marks}))"
        extra.update({f"l{i}": name for i, name in enumerate(limited)})
    if serve is not None:
        marks = ",".join(f":s{i}" for i in range(len(serve))) or "NULL"
        where += f" AND COALESCE(queue, '') IN ({marks})"
        extra.update({f"s{i}": name for i, name in enumerate(serve)})
    taken.extend(take_fair(conn, {**params, **extra}, where, room))
    return taken


def take_fair(
    conn: sqlite3.Connection, params: dict[str, Any], where: str, limit: int
) -> list[RunRecord]:
    """Claim runs already started first (due timers, delivered events, expired leases), then
    new ones: a backlog of new runs never delays a due timer by more than a poll."""
    taken = _take(conn, params, f"{where} AND started_at IS NOT NULL", limit)
    if len(taken) < limit:
        taken += _take(conn, params, f"{where} AND started_at IS NULL", limit - len(taken))
    return taken


def _claim_queue(
    conn: sqlite3.Connection, params: dict[str, Any], room: int, name: str, limits: QueueLimits
) -> list[RunRecord]:
    use = {**params, "queue": name, "since": params["now"] - limits.per}
    running, started = conn.execute(
        "SELECT (SELECT count(*) FROM runs WHERE queue=:queue AND status='running'"
        "  AND lease_until>=:now),"
        " (SELECT count(*) FROM runs WHERE queue=:queue AND started_at>:since)",
        use,
    ).fetchone()
    allowed = room
    for limit in (limits.concurrency, limits.per_worker):
        if limit is not None:
            allowed = min(allowed, limit - running)
    if allowed <= 0:
        return []
    taken = _take(conn, use, "queue=:queue AND started_at IS NOT NULL", allowed)
    fresh = allowed - len(taken)
    if limits.rate is not None:
        fresh = min(fresh, limits.rate - started)
    if fresh > 0:
        taken += _take(conn, use, "queue=:queue AND started_at IS NULL", fresh)
    return taken


def _take(
    conn: sqlite3.Connection, params: dict[str, Any], where: str, limit: int
) -> list[RunRecord]:
    rows = conn.execute(
        "UPDATE runs SET status='running', owner=:owner, lease_until=:lease_until,"
        " updated_at=:now, started_at=COALESCE(started_at, :now), activations=activations+1"
        f" WHERE id IN (SELECT id FROM runs WHERE {_RUNNABLE} AND {where}"
        "   ORDER BY COALESCE(wake_at, created_at) LIMIT :limit)"
        f" RETURNING {RUN_COLS}",
        {**params, "limit": limit},
    ).fetchall()
    return [run_record(r) for r in rows]
