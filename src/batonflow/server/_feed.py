"""The change feed: the audit trail read in order of its global sequence.

Every state change of every process is an audit entry with a sequence number, written in the
transaction of the change, so the trail is a complete, ordered, cross-process change feed. One
reader per ``serve`` process follows its head (woken at once when the store can tell it, else
every ``interval`` seconds) and fans new entries out to subscribers (SSE streams, metrics).
A subscriber that reconnects with ``Last-Event-ID: N`` first reads entries after ``N`` from the
store, so it misses nothing, however long it was away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import batonflow as bf
from batonflow.store import AuditRecord
from batonflow.store._protocol import WakeUps

log = logging.getLogger("batonflow.server")
_PAGE = 500


class Feed:
    def __init__(self, store: bf.Store, *, interval: float = 0.05, backlog: int = 10_000) -> None:
        self._store = store
        self._interval = interval
        self._backlog = backlog
        self._queues: set[asyncio.Queue[AuditRecord | None]] = set()
        self._observers: list[Callable[[AuditRecord], None]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._closed = False  # the server is stopping: streams end, new ones end at once
        self.head = 0

    async def start(self) -> None:
        last = await self._last_seq()
        self.head = last
        watch = getattr(self._store, "on_audit", None)  # PostgreSQL: LISTEN/NOTIFY
        if watch is not None:
            self._unsubscribe = await watch(self._wake.set)
            self._interval = max(self._interval, 1.0)  # reading is then only a safety net
        elif isinstance(self._store, WakeUps):
            self._unsubscribe = self._store.on_work(self._wake.set)
        self._task = asyncio.create_task(self._follow(), name="batonflow-feed")

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for queue in self._queues:
            queue.put_nowait(None)

    def close_streams(self) -> None:
        """End every subscriber's stream (the server is shutting down; clients reconnect)."""
        self._closed = True
        for queue in list(self._queues):
            self._queues.discard(queue)
            queue.put_nowait(None)

    def wake(self) -> None:
        self._wake.set()

    def observe(self, callback: Callable[[AuditRecord], None]) -> None:
        """Call ``callback`` with every new entry (metrics)."""
        self._observers.append(callback)

    async def _last_seq(self) -> int:
        """The trail's last sequence number, in O(log n) reads (the sequence has no gaps)."""

        async def exists(seq: int) -> bool:
            return bool(await self._store.read_audit(after=seq - 1, limit=1))

        high = 1
        while await exists(high):
            high *= 2
        low = high // 2  # exists(low) holds, or low == 0
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if await exists(middle) else (low, middle)
        return low

    async def _follow(self) -> None:
        while True:
            try:
                page = await self._store.read_audit(after=self.head, limit=_PAGE)
            except bf.StoreError as exc:
                log.warning("the change feed could not read the store: %s", exc)
                page = []
            for record in page:
                self.head = record.seq
                self._publish(record)
            if len(page) == _PAGE:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)

    def _publish(self, record: AuditRecord) -> None:
        for observe in self._observers:
            try:
                observe(record)
            except Exception:  # an observer's bug must not stop the feed
                log.exception("a change-feed observer failed")
        for queue in list(self._queues):
            if queue.qsize() >= self._backlog:  # too slow: end its stream; it reconnects
                self._queues.discard(queue)
                queue.put_nowait(None)
            else:
                queue.put_nowait(record)

    async def entries(
        self,
        after: int | None,
        keep: Callable[[AuditRecord], bool],
        *,
        run_id: str | None = None,
    ) -> AsyncIterator[AuditRecord]:
        """Entries that ``keep`` accepts: those after ``after`` from the store (None: only new
        ones), then live ones as they come. Ends when the feed stops or drops a slow reader.
        ``run_id``: read the history through the trail's per-run index (that run's entries)."""
        if self._closed:
            return
        queue: asyncio.Queue[AuditRecord | None] = asyncio.Queue()
        self._queues.add(queue)  # before reading history: nothing falls between the two
        try:
            last = self.head if after is None else after
            while page := await self._store.read_audit(after=last, limit=_PAGE, run_id=run_id):
                for record in page:
                    last = record.seq
                    if keep(record):
                        yield record
            while (live := await queue.get()) is not None:
                if live.seq > last:
                    last = live.seq
                    if keep(live):
                        yield live
        finally:
            self._queues.discard(queue)


def event_of(record: AuditRecord) -> dict[str, Any]:
    """What a stream tells about an entry: what happened, to which run, by whom, when. Payloads
    stay out (they may hold personal data): fetch the run for its details."""
    return {
        "seq": record.seq, "at": record.at, "kind": record.kind, "run_id": record.run_id,
        "step_id": record.step_id, "actor": record.actor,
    }  # fmt: skip
