"""The PostgreSQL store's connections: the pool, retrying through database loss, migrations,
and the LISTEN connection that wakes engines."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import psycopg
import psycopg.errors
from psycopg import AsyncTransaction, pq, sql
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from batonflow.errors import ConfigError, StoreError
from batonflow.store._postgres_schema import (
    MIGRATIONS,
    VERSION_TABLE,
    audit_channel_for,
    channel_for,
)

log = logging.getLogger("batonflow.store.postgres")
T = TypeVar("T")
Conn = psycopg.AsyncConnection[Any]
Op = Callable[[Conn, bool], Awaitable[T]]

_RETRY_NOW = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
_FIRST_DELAY, _MAX_DELAY = 0.05, 2.0


CommitObserver = Callable[[float], None]


class TimedConnection(psycopg.AsyncConnection[Any]):
    """A pooled connection whose outermost transactions report how long their commit took."""

    commit_observers: Sequence[CommitObserver] = ()  # the store's list, set on connecting

    @asynccontextmanager
    async def transaction(
        self, savepoint_name: str | None = None, force_rollback: bool = False
    ) -> AsyncIterator[AsyncTransaction]:
        outermost = self.info.transaction_status == pq.TransactionStatus.IDLE
        body_done = 0.0
        async with super().transaction(savepoint_name, force_rollback) as tx:
            yield tx
            body_done = time.perf_counter()
        if outermost and body_done and not force_rollback:  # committed, not rolled back
            took = time.perf_counter() - body_done
            for observe in self.commit_observers:
                try:
                    observe(took)
                except Exception:  # an observer's bug must not fail a committed write
                    log.warning("a commit observer failed", exc_info=True)


class Connections:
    """The pool and the LISTEN connection :class:`PostgresStore` runs its operations on."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        max_outage: float | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        if pool_size < 1:
            raise ConfigError("pool_size must be at least 1")
        self.url = url
        self.pool_size = pool_size
        self.max_outage = max_outage
        self.connect_timeout = connect_timeout
        self.schema = ""
        self.channel = ""
        self.audit_channel = ""
        self._audit_listeners: list[Callable[[], None]] = []
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._listeners: list[Callable[[], None]] = []
        self._listen_task: asyncio.Task[None] | None = None
        self._commit_observers: list[CommitObserver] = []
        self._listening = asyncio.Event()
        self.outages = 0  # operations that met a lost connection and were retried (for tests)

    def __repr__(self) -> str:
        return f"PostgresStore({redact(self.url)!r})"

    # -- lifecycle ----------------------------------------------------------------------------
    async def open(self) -> None:
        if self._pool is not None:
            return
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, connect_timeout=max(1, int(self.connect_timeout))
            )
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to {redact(self.url)}: {exc}") from exc
        try:
            async with conn:
                await self._migrate(conn)
        except psycopg.Error as exc:
            raise StoreError(f"cannot prepare {redact(self.url)}: {exc}") from exc
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=self.pool_size,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(self.connect_timeout))},
            connection_class=TimedConnection,
            configure=self._configure,
            open=False,
            timeout=self.connect_timeout,
            name="batonflow",
        )
        try:
            await pool.open(wait=True, timeout=self.connect_timeout)
        except PoolTimeout as exc:
            await pool.close()
            raise StoreError(f"cannot connect to {redact(self.url)}: {exc}") from exc
        self._pool = pool

    async def _migrate(self, conn: Conn) -> None:
        row = await (await conn.execute("SELECT current_schema()")).fetchone()
        schema = row[0] if row else None
        if schema is None:
            raise ConfigError(
                f"{redact(self.url)}: the search_path names no existing schema; create it first"
            )
        self.schema, self.channel = schema, channel_for(schema)
        self.audit_channel = audit_channel_for(schema)
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 7))",
                (f"batonflow-migrate:{schema}",),
            )
            await check_identity(conn, schema, self.url)
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (only_row BOOLEAN PRIMARY KEY"
                " DEFAULT TRUE CHECK (only_row), version INTEGER NOT NULL)"
            )
            row = await (await conn.execute(f"SELECT version FROM {VERSION_TABLE}")).fetchone()
            version = row[0] if row else 0
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"{redact(self.url)} has batonflow schema version {version}, newer than this"
                    f" batonflow understands ({len(MIGRATIONS)}); upgrade batonflow"
                )
            for script in MIGRATIONS[version:]:
                await conn.execute(script)
            if version < len(MIGRATIONS):
                await conn.execute(
                    f"INSERT INTO {VERSION_TABLE} (version) VALUES (%s) ON CONFLICT (only_row)"
                    " DO UPDATE SET version=EXCLUDED.version",
                    (len(MIGRATIONS),),
                )

    async def _configure(self, conn: Conn) -> None:
        if isinstance(conn, TimedConnection):
            conn.commit_observers = self._commit_observers

    def observe_commits(self, observer: CommitObserver) -> None:
        """Call ``observer(seconds)`` after each committed write transaction with how long
        its commit took. It runs on the event loop: keep it quick."""
        self._commit_observers.append(observer)

    async def close(self) -> None:
        await self._stop_listening()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    # -- running operations -------------------------------------------------------------------
    async def _run(self, op: Op[T]) -> T:
        """Run ``op`` on a pooled connection; on a lost connection retry it with backoff.

        ``op`` gets ``retried=True`` once a try failed with an unknown outcome (the connection
        broke, perhaps during the commit): it must then accept that its first try committed.
        """
        delay, retried, since = _FIRST_DELAY, False, None
        while True:
            pool = self._pool
            if pool is None:
                raise StoreError("the store is not open")
            try:
                async with pool.connection() as conn:
                    return await op(conn, retried)
            except _RETRY_NOW:
                continue  # rolled back whole; the conflicting transaction has moved on
            except (psycopg.OperationalError, PoolTimeout) as exc:
                if isinstance(exc, psycopg.errors.QueryCanceled):
                    raise StoreError(f"PostgreSQL: {exc}") from exc
                now = time.monotonic()
                since = since or now
                if self.max_outage is not None and now - since > self.max_outage:
                    raise StoreError(
                        f"PostgreSQL unreachable for {now - since:.0f}s: {exc}"
                    ) from exc
                if not retried:
                    log.warning("PostgreSQL connection lost, retrying: %s", exc)
                    self.outages += 1
                retried = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_DELAY)
                if self._pool is not None:
                    await self._pool.check()  # drop every connection the outage broke
            except PoolClosed as exc:
                raise StoreError("the store is closed") from exc
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL: {exc}") from exc

    async def _rows(self, query: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]:
        async def read(conn: Conn, _retried: bool) -> list[Any]:
            return await (await conn.execute(query, params)).fetchall()

        return await self._run(read)

    async def schema_current(self) -> bool:
        """Is the database at exactly this batonflow's schema version (readiness checks)?"""
        rows = await self._rows(f"SELECT version FROM {VERSION_TABLE}")
        return bool(rows and rows[0][0] == len(MIGRATIONS))

    # -- wake-ups -----------------------------------------------------------------------------
    def on_work(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (on this event loop) when any process may have made a run runnable.

        Returns a function that unsubscribes. The subscription is served by one LISTEN
        connection, opened by :meth:`acquire_worker` (only engines need it)."""
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    def _fire(self) -> None:
        for callback in list(self._listeners):
            callback()

    async def on_audit(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (on this event loop) whenever any process appended audit entries
        (a change feed's wake-up). Returns a function that unsubscribes."""
        self._audit_listeners.append(callback)
        await self._start_listening()

        def unsubscribe() -> None:
            if callback in self._audit_listeners:
                self._audit_listeners.remove(callback)

        return unsubscribe

    def _fire_audit(self) -> None:
        for callback in list(self._audit_listeners):
            callback()

    async def _listen(self) -> None:
        delay = _FIRST_DELAY
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=max(1, int(self.connect_timeout))
                )
                async with conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    listen_audit = sql.SQL("LISTEN {}").format(sql.Identifier(self.audit_channel))
                    await conn.execute(listen_audit)
                    self._listening.set()
                    delay = _FIRST_DELAY
                    self._fire()  # news may have come while we were not listening
                    self._fire_audit()
                    async for note in conn.notifies():
                        if note.channel == self.audit_channel:
                            self._fire_audit()
                        else:
                            self._fire()
            except psycopg.Error as exc:
                self._listening.clear()
                log.warning("PostgreSQL LISTEN connection lost, reconnecting: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_DELAY)

    async def _stop_listening(self) -> None:
        task, self._listen_task = self._listen_task, None
        while task is not None and not task.done():
            task.cancel()  # again if it was lost (Python 3.11's wait_for can swallow one)
            await asyncio.wait({task}, timeout=0.1)
        self._listening.clear()

    async def _start_listening(self) -> None:
        if self._pool is None:
            raise StoreError("the store is not open")
        if self._listen_task is None:
            self._listening = asyncio.Event()
            self._listen_task = asyncio.create_task(self._listen(), name="batonflow-pg-listen")
            waiter = asyncio.ensure_future(self._listening.wait())
            await asyncio.wait(
                {waiter, self._listen_task},
                timeout=self.connect_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
            waiter.cancel()

    async def _write(self, query: str, params: Sequence[Any] | Mapping[str, Any]) -> int:
        async def write(conn: Conn, _retried: bool) -> int:
            return (await conn.execute(query, params)).rowcount

        return await self._run(write)


def redact(url: str) -> str:
    """``url`` without its password, for messages."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


async def _schema_tables(conn: Conn, schema: str) -> set[str]:
    """The tables, views and sequences of ``schema`` (read from the catalog, nothing written)."""
    rows = await (
        await conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
            (schema,),
        )
    ).fetchall()
    return {row[0] for row in rows}


async def check_identity(conn: Conn, schema: str, url: str) -> int:
    """The batonflow schema version of ``schema`` (0: an empty schema), or a StoreError if the
    schema holds another program's tables: no version table but other tables, or a version
    table without ``runs``. Only reads, so a foreign schema is left as it was found (the rule
    SQLite stores follow, see ``SQLiteStore._check_identity``)."""
    tables = await _schema_tables(conn, schema)
    version = 0
    if VERSION_TABLE in tables:
        row = await (await conn.execute(f"SELECT version FROM {VERSION_TABLE}")).fetchone()
        version = row[0] if row else 0
    if (VERSION_TABLE not in tables and tables) or (version > 0 and "runs" not in tables):
        shown = ", ".join(sorted(tables)[:5])
        raise StoreError(
            f"{redact(url)}: schema {schema!r} holds tables that are not a batonflow store"
            f" ({shown}); it was left unchanged. Give batonflow a schema of its own: add"
            " ?options=-csearch_path%3Dbatonflow to the URL after CREATE SCHEMA batonflow"
        )
    return version


async def check_readable(url: str, *, connect_timeout: float = 10.0) -> None:
    """What a read-only command checks before it opens ``url``: the schema is a batonflow
    store at this batonflow's version. Never creates or migrates anything (a writing command
    upgrades an older store; an empty schema has no runs to read)."""
    try:
        conn = await psycopg.AsyncConnection.connect(
            url, autocommit=True, connect_timeout=max(1, int(connect_timeout))
        )
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to {redact(url)}: {exc}") from exc
    try:
        async with conn:
            row = await (await conn.execute("SELECT current_schema()")).fetchone()
            schema = row[0] if row else None
            if schema is None:
                raise ConfigError(
                    f"{redact(url)}: the search_path names no existing schema; create it first"
                )
            version = await check_identity(conn, schema, url)
    except psycopg.Error as exc:
        raise StoreError(f"cannot read {redact(url)}: {exc}") from exc
    if version == 0:
        raise ConfigError(
            f"{redact(url)}: schema {schema!r} holds no batonflow store yet; start a run"
            " first, or point --db at the database that holds your runs"
        )
    if version < len(MIGRATIONS):
        raise ConfigError(
            f"{redact(url)}: the store has schema version {version}; this batonflow uses"
            f" {len(MIGRATIONS)}. A read-only command does not upgrade it: run a command that"
            " writes (`batonflow worker`, `batonflow run`) once to upgrade it"
        )
