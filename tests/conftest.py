from __future__ import annotations

import os
import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import batonflow as bf
from batonflow.governance._keys import KEYS_ENV, MasterKeys
from batonflow.testing import FakeClock

EngineFactory = Callable[..., AbstractAsyncContextManager[bf.Engine]]

#: The PostgreSQL server the tests may use (CI always sets it: see .ci/run). Tests that need it
#: are skipped when it is not set; each test gets a schema of its own in that database.
PG_URL_ENV = "BATONFLOW_TEST_POSTGRES_URL"
NO_PG = f"PostgreSQL tests need {PG_URL_ENV}=postgresql://... (.ci/run sets it)"


class PgSchemas:
    """Makes a fresh schema per test in the test database, and drops it afterwards."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = None

    def _execute(self, statement: str) -> None:
        import psycopg

        for attempt in range(3):  # a test may have restarted the server under our connection
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self.url, autocommit=True)
                self._conn.execute(statement)
                return
            except psycopg.OperationalError:
                self._conn = None
                if attempt == 2:
                    raise

    def create(self) -> tuple[str, str]:
        """(schema name, a store URL whose search_path selects it)."""
        schema = f"bf_test_{uuid.uuid4().hex[:12]}"
        self._execute(f"CREATE SCHEMA {schema}")
        return schema, with_search_path(self.url, schema)

    def drop(self, schema: str) -> None:
        self._execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def with_search_path(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


#: The timeout of a test marked ``long`` (a chaos run, a live worker): its own budget, so a
#: loaded CI machine does not turn a slow pass into a failure at the 60 s default.
LONG_TIMEOUT = 300


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("long") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(LONG_TIMEOUT))


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """The test database's URL (its default schema): for what tests do beside the store."""
    url = os.environ.get(PG_URL_ENV)
    if not url:
        pytest.skip(NO_PG)
    return url


@pytest.fixture(scope="session")
def pg_schemas(pg_admin_url: str) -> Iterator[PgSchemas]:
    schemas = PgSchemas(pg_admin_url)
    try:
        yield schemas
    finally:
        schemas.close()


@pytest.fixture
def pg_url(pg_schemas: PgSchemas, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A store URL on an empty schema of its own."""
    # A PostgreSQL database keeps no keys: an operator sets $BATONFLOW_KEYS (docs/security.md),
    # and so does every test on one (commands in subprocesses inherit it).
    if not os.environ.get(KEYS_ENV):
        monkeypatch.setenv(KEYS_ENV, MasterKeys.generate().to_text())
    schema, url = pg_schemas.create()
    try:
        yield url
    finally:
        pg_schemas.drop(schema)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, db_path: Path) -> str:
    """The test's database: the kernel suite runs once on each store."""
    if request.param == "sqlite":
        return str(db_path)
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def make_engine(store_url: str, clock: FakeClock) -> EngineFactory:
    """Open an engine on the test's database; open another after closing one to "restart"."""

    @asynccontextmanager
    async def factory(**options: Any) -> AsyncIterator[bf.Engine]:
        options.setdefault("clock", clock)
        options.setdefault("rng", random.Random(7))
        async with bf.Engine(store_url, **options) as engine:
            yield engine

    return factory


@pytest.fixture
async def engine(make_engine: EngineFactory) -> AsyncIterator[bf.Engine]:
    async with make_engine() as engine:
        yield engine


@pytest.fixture(autouse=True)
def _no_chosen_configuration() -> Iterator[None]:
    """The CLI remembers the configuration its root option chose for the process; tests run
    many commands in one process, so each starts without a choice."""
    from batonflow.cli import _setup

    _setup._CHOSEN.clear()
    yield
    _setup._CHOSEN.clear()
