"""One writer thread per database: every write goes through it, and queued writes share commits.

Writes from concurrent runs arrive while the previous batch is being committed; the next batch
takes them all, each inside its own SAVEPOINT (so one failing write does not undo its
neighbours), and commits once. With ``synchronous=FULL`` a commit is one fsync of the WAL, so
under load many step records pay for one fsync: group commit, with no artificial delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from batonflow.errors import BatonflowError, StoreError
from batonflow.store._sqlite_sql import forget_head, remember_head

log = logging.getLogger("batonflow.store")

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]

_Item = tuple[Op, "asyncio.Future[Any]"]
CommitObserver = Callable[[float], None]


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk (WAL fsynced) before it is acknowledged, so a recorded step
    # survives power loss, not only a process crash.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    # Deleted content is overwritten with zeros, so an erased subject's key (or a purged run)
    # does not linger in free pages of the file.
    conn.execute("PRAGMA secure_delete=ON")
    return conn


class Writer:
    def __init__(self, path: str, observers: list[CommitObserver] | None = None) -> None:
        self._path = path
        # called on this thread with each commit's seconds (the fsync): quick and thread-safe
        self._observers = observers if observers is not None else []
        self._cond = threading.Condition()
        self._items: list[_Item] = []
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, name="batonflow-sqlite-writer", daemon=True
        )
        self._conn: sqlite3.Connection | None = None
        self._busy = False  # the connection is in use (by the writer thread or an inline commit)
        self._ready = threading.Event()
        self._startup_error: sqlite3.Error | None = None
        self._candidate = False  # a write is deciding whether to commit inline
        self.batches = 0  # commits made; read by tests and benchmarks to show group commit
        self.ops = 0

    def start(self) -> None:
        """Start the writer thread; return once its connection is open (or raise why not)."""
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            raise StoreError(f"cannot open {self._path}: {self._startup_error}")

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    async def submit(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Commit ``op``: inline when nothing else wants to write, else in the writer's batch.

        A lone writer pays two thread hand-offs per commit on the writer thread; doing the commit
        inline saves them. To tell "alone" from "first of many", the would-be inline writer first
        yields once to the event loop: if any other write was queued meanwhile, it joins that
        batch instead, so group commit still forms under load.
        """
        with self._cond:
            if self._closed:
                raise StoreError("the store is closed")
            candidate = not (self._busy or self._items or self._candidate or self._conn is None)
            if candidate:
                self._candidate = True
        if candidate:
            await asyncio.sleep(0)
            with self._cond:
                self._candidate = False
                inline = not self._busy and not self._items and self._conn is not None
                if inline:
                    self._busy = True
            if inline:
                return self._commit_inline(op)
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        with self._cond:
            if self._closed:
                raise StoreError("the store is closed")
            self._items.append((op, fut))
            self._cond.notify()
        return await fut

    def _commit_inline(self, op: Callable[[sqlite3.Connection], T]) -> T:
        try:
            assert self._conn is not None
            try:
                ((_, value, err),) = self._execute(self._conn, [(op, None)])  # type: ignore[list-item]
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    _quietly(self._conn, "ROLLBACK")
                raise _translate(exc) from exc
        finally:
            with self._cond:
                self._busy = False
                if self._items:  # only wake the writer thread when there is work for it
                    self._cond.notify()
        if err is not None:
            raise err
        return value  # type: ignore[no-any-return]

    def _run(self) -> None:
        try:
            conn = connect(self._path)
        except sqlite3.Error as exc:
            self._startup_error = exc
            self._ready.set()
            return
        with self._cond:
            self._conn = conn
        self._ready.set()
        try:
            while True:
                with self._cond:
                    while (not self._items or self._busy) and not self._closed:
                        self._cond.wait()
                    while self._busy:
                        self._cond.wait()
                    if not self._items:
                        return
                    batch, self._items = self._items, []
                    self._busy = True
                try:
                    try:
                        results = self._execute(conn, batch)
                    except Exception as exc:  # the writer thread must outlive any one batch
                        if conn.in_transaction:
                            _quietly(conn, "ROLLBACK")
                        results = _all_failed(batch, _translate(exc))
                    self._resolve(results)
                finally:
                    with self._cond:
                        self._busy = False
        finally:
            with self._cond:
                self._conn = None
            conn.close()

    def _execute(self, conn: sqlite3.Connection, batch: list[_Item]) -> list[tuple[Any, Any, Any]]:
        """Run a batch in one transaction. Fast path: no savepoints. If any op raises (a lost
        lease, a conflict), roll the batch back and run it again with each op in a savepoint,
        so the failing op changes nothing and its neighbours still commit."""
        results = self._transaction(conn, batch, isolate=False)
        if any(err is not None for _, _, err in results):
            results = self._transaction(conn, batch, isolate=True)
        return results

    def _transaction(
        self, conn: sqlite3.Connection, batch: list[_Item], *, isolate: bool
    ) -> list[tuple[Any, Any, Any]]:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            err = StoreError(f"cannot begin a write transaction: {exc}")
            return [(fut, None, err) for _, fut in batch]
        remember_head(conn)
        try:
            return self._ops(conn, batch, isolate=isolate)
        finally:
            forget_head(conn)

    def _ops(
        self, conn: sqlite3.Connection, batch: list[_Item], *, isolate: bool
    ) -> list[tuple[Any, Any, Any]]:
        results: list[tuple[Any, Any, Any]] = []
        for op, fut in batch:
            try:
                if isolate:
                    conn.execute("SAVEPOINT op")
                value = op(conn)
            except Exception as exc:
                remember_head(conn)  # what the op appended is undone with it
                failure = _translate(exc)
                if not conn.in_transaction:
                    # SQLite rolled the whole transaction back itself (a full disk, an I/O
                    # error): nothing in this batch was recorded
                    return _all_failed(batch, failure)
                results.append((fut, None, failure))
                if not isolate:
                    _quietly(conn, "ROLLBACK")
                    return results
                if not (_quietly(conn, "ROLLBACK TO op") and _quietly(conn, "RELEASE op")):
                    _quietly(conn, "ROLLBACK")
                    return _all_failed(batch, failure)
            else:
                if isolate:
                    conn.execute("RELEASE op")
                results.append((fut, value, None))
        began = time.perf_counter()
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                _quietly(conn, "ROLLBACK")
            err = StoreError(f"commit failed, nothing in this batch was recorded: {exc}")
            return [(fut, None, err) for _, fut in batch]
        took = time.perf_counter() - began
        self.batches += 1
        self.ops += len(batch)
        for observe in self._observers:
            try:
                observe(took)
            except Exception:  # an observer's bug must not fail a committed batch
                log.warning("a commit observer failed", exc_info=True)
        return results

    @staticmethod
    def _resolve(results: list[tuple[Any, Any, Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any, Any]]] = {}
        for item in results:
            by_loop.setdefault(item[0].get_loop(), []).append(item)
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                loop.call_soon_threadsafe(_settle, items)


def _settle(items: list[tuple[Any, Any, Any]]) -> None:
    for fut, value, err in items:
        if fut.done():  # the awaiting coroutine was cancelled; the write still committed
            continue
        if err is None:
            fut.set_result(value)
        else:
            fut.set_exception(err)


def _all_failed(batch: list[_Item], err: Exception) -> list[tuple[Any, Any, Any]]:
    failed = err if isinstance(err, StoreError) else StoreError(str(err))
    return [(fut, None, failed) for _, fut in batch]


def _quietly(conn: sqlite3.Connection, statement: str) -> bool:
    """Run a rollback-type statement; False if SQLite refused it (already rolled back)."""
    try:
        conn.execute(statement)
    except sqlite3.Error:
        return False
    return True


def _translate(exc: Exception) -> Exception:
    if isinstance(exc, BatonflowError):
        return exc
    if isinstance(exc, sqlite3.Error):
        return StoreError(f"SQLite error: {exc}")
    return exc
