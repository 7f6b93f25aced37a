"""Claiming runs on PostgreSQL, with the limits of named queues enforced across all workers.

Runs on no queue, or on a queue without limits, are claimed by one statement with
``FOR UPDATE SKIP LOCKED``. Each limited queue is claimed in a short transaction holding a
transaction-scoped advisory lock for that queue: its claimers count the queue's live runs (and
its recent starts, for a rate limit) and claim within what is left, one worker after another, so
two workers never both take the last slot. Claimers of different queues never wait for each
other, and nothing else takes these locks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from batonflow.store import _postgres_sql as q
from batonflow.store import _rows as shared
from batonflow.store._model import QueueLimits, RunRecord

Conn = psycopg.AsyncConnection[Any]

_QUEUE_LOCK = (
    "SELECT pg_advisory_xact_lock(hashtextextended('batonflow-queue:' || current_schema()"
    " || ':' || %s::text, 7))"
)
_QUEUE_USE = (
    "SELECT"
    " (SELECT count(*) FROM runs WHERE queue=%(queue)s AND status='running'"
    "   AND lease_until>=%(now)s),"
    " (SELECT count(*) FROM runs WHERE queue=%(queue)s AND status='running'"
    "   AND lease_until>=%(now)s AND owner=%(owner)s),"
    " (SELECT count(*) FROM runs WHERE queue=%(queue)s AND started_at>%(since)s)"
)
_FREE = "(queue IS NULL OR queue <> ALL(%(limited)s::text[]))"
_SERVED = "COALESCE(queue, '') = ANY(%(serve)s::text[])"
_RESUMED = "queue=%(queue)s AND started_at IS NOT NULL"
_FRESH = "queue=%(queue)s AND started_at IS NULL"


async def claim(
    conn: Conn,
    base: dict[str, Any],
    limit: int,
    queues: Mapping[str, QueueLimits],
    serve: Sequence[str] | None,
) -> list[RunRecord]:
    """Claim up to ``limit`` runs: limited queues first (within their limits), then the rest."""
    limited = [name for name, limits in queues.items() if limits.limited]
    taken: list[RunRecord] = []
    for name in limited:
        if serve is not None and name not in serve:
            continue
        if len(taken) >= limit:
            return taken
        taken.extend(await _claim_queue(conn, base, limit - len(taken), name, queues[name]))
    room = limit - len(taken)
    if room > 0:
        where = _FREE if limited else "TRUE"
        if serve is not None:
            where += f" AND {_SERVED}"
        params = {**base, "limited": limited, "serve": list(serve or ())}
        # started runs (due timers, delivered events, expired leases) before new ones
        taken.extend(await _take(conn, params, f"{where} AND started_at IS NOT NULL", room))
        room = limit - len(taken)
        if room > 0:
            taken.extend(await _take(conn, params, f"{where} AND started_at IS NULL", room))
    return taken


async def _claim_queue(
    conn: Conn, base: dict[str, Any], room: int, name: str, limits: QueueLimits
) -> list[RunRecord]:
    taken: list[RunRecord] = []
    async with conn.transaction():
        await conn.execute(_QUEUE_LOCK, (name,))
        use = {**base, "queue": name, "since": base["now"] - limits.per}
        row = await (await conn.execute(_QUEUE_USE, use)).fetchone()
        assert row is not None
        running, mine, started = row
        allowed = room
        if limits.concurrency is not None:
            allowed = min(allowed, limits.concurrency - running)
        if limits.per_worker is not None:
            allowed = min(allowed, limits.per_worker - mine)
        if allowed <= 0:
            return taken
        taken.extend(await _take(conn, use, _RESUMED, allowed))
        fresh = allowed - len(taken)
        if limits.rate is not None:
            fresh = min(fresh, limits.rate - started)
        if fresh > 0:
            taken.extend(await _take(conn, use, _FRESH, fresh))
    return taken


async def _take(conn: Conn, params: dict[str, Any], where: str, limit: int) -> list[RunRecord]:
    query = q.claim_sql(where)
    rows = await (await conn.execute(query, {**params, "limit": limit})).fetchall()
    return [shared.run_record(r) for r in rows]
