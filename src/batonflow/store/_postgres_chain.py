"""The PostgreSQL trail's chainer: committed entries are sealed into the hash chain after commit.

Writers insert their entries unsealed (no ``seq``, ``prev_hash`` or ``hash``), each with an
order key from a sequence (``ord``) and its transaction's id (``txid``), so no transaction waits
for another to append. A pass of the chainer, in one transaction of its own:

1. takes the schema's chain lock (an advisory lock; a pass that does not get it leaves the work
   to the holder, unless it was asked to wait);
2. selects the unsealed entries whose ``txid`` is below the xmin of its snapshot, ordered by
   ``(txid, ord)``: every transaction below xmin has ended, so those entries are all committed
   ones of such transactions, and no entry below xmin can appear later;
3. reads the head once, chains the batch onto it, writes every entry's position and hashes with
   one ``UPDATE ... FROM unnest(...)``, moves the head, and notifies the trail's followers.

The order is therefore ``(txid, ord)`` over all processes on all machines (docs/design.md
decision 96). Each store runs passes after its own commits and every ``interval`` seconds, so
entries of a process that died between its commit and a pass are sealed by any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from batonflow.store import _audit
from batonflow.store._model import AuditEntry

log = logging.getLogger("batonflow.store.postgres")

Conn = psycopg.AsyncConnection[Any]

#: The lock whose holder seals (one per schema); taken per pass, released at its commit.
TRY_LOCK = "SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 17))"
LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 17))"
READY = (
    "SELECT ord, at, kind, run_id, step_id, actor, subjects, data_json FROM audit"
    " WHERE seq IS NULL AND txid < pg_snapshot_xmin(pg_current_snapshot())"
    " ORDER BY txid, ord LIMIT %s"
)
#: Taken before READY, whose own snapshot's xmin is the same or newer: what is below this
#: boundary is sealed once READY's entries are.
XMIN = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
HEAD = "SELECT seq, hash FROM audit_head"
SEAL = (
    "UPDATE audit a SET seq=u.seq, prev_hash=u.prev, hash=u.hash"
    " FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[]) AS u(ord, seq, prev, hash)"
    " WHERE a.ord=u.ord AND a.seq IS NULL"
)
SET_HEAD = "UPDATE audit_head SET seq=%s, hash=%s"
NOTIFY = "SELECT pg_notify(%s, '')"
#: Committed entries still unsealed that were written more than ``%s`` seconds ago.
OVERDUE = (
    "SELECT count(*), min(ord), EXTRACT(EPOCH FROM now() - min(written)) FROM audit"
    " WHERE seq IS NULL AND written <= now() - make_interval(secs => %s)"
)

BATCH = 2000
#: Seconds a pass triggered by a local commit waits for more commits to join it.
GATHER = 0.01


async def seal_pass(conn: Conn, schema: str, channel: str, *, wait: bool) -> tuple[int, int]:
    """Seal what is ready, in batches. Returns the number of entries sealed (0 if another pass
    holds the lock and ``wait`` is false) and a boundary: every committed entry of a transaction
    below it is sealed (0 when the pass did not run). ``conn`` is in autocommit mode."""
    sealed = 0
    while True:
        async with conn.transaction():
            lock = LOCK if wait else TRY_LOCK
            row = await (await conn.execute(lock, (f"batonflow-chain:{schema}",))).fetchone()
            if not wait and not (row and row[0]):
                return sealed, 0
            xmin = await (await conn.execute(XMIN)).fetchone()
            assert xmin is not None
            rows = await (await conn.execute(READY, (BATCH,))).fetchall()
            if not rows:
                return sealed, int(xmin[0])
            head = await (await conn.execute(HEAD)).fetchone()
            assert head is not None, "migration 2 creates the audit head"
            entries = [
                (float(r[1]), AuditEntry(r[2], r[7], r[3], r[4], r[5], _audit.subjects_of(r[6])))
                for r in rows
            ]
            records = _audit.chain_at(entries, int(head[0]), str(head[1]))
            await conn.execute(
                SEAL,
                (
                    [int(r[0]) for r in rows],
                    [r.seq for r in records],
                    [r.prev_hash for r in records],
                    [r.hash for r in records],
                ),
            )
            await conn.execute(SET_HEAD, (records[-1].seq, records[-1].hash))
            await conn.execute(NOTIFY, (channel,))
        sealed += len(rows)
        if len(rows) < BATCH:
            return sealed, int(xmin[0])


class Chainer:
    """Runs seal passes for one store: at once after its commits that appended (coalesced: one
    pass at a time, another if news came meanwhile) and every ``interval`` seconds for entries
    other processes left."""

    def __init__(self, run_pass: Callable[[bool], Awaitable[object]], interval: float) -> None:
        self._run_pass = run_pass
        self.interval = interval
        self._news = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="batonflow-pg-chainer")

    async def stop(self) -> None:
        task, self._task = self._task, None
        while task is not None and not task.done():
            task.cancel()  # again if it was lost (Python 3.11's wait_for can swallow one)
            await asyncio.wait({task}, timeout=0.1)

    def nudge(self) -> None:
        """Entries were committed here: seal them now rather than at the next tick."""
        self._news.set()

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._news.wait(), self.interval)
                # let the commits of the next few milliseconds join this pass: one pass per
                # batch of commits, not one per commit, is what keeps its cost off each write
                await asyncio.sleep(GATHER)
            self._news.clear()
            try:
                await self._run_pass(False)
            except Exception as exc:  # the next tick tries again; the lag is what verify checks
                log.warning("sealing audit entries failed, retrying: %s", exc)
