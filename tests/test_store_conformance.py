from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import batonflow as bf
from batonflow import SQLiteStore
from batonflow.store import open_store
from batonflow.testing import StoreConformance


class TestSQLiteStore(StoreConformance):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SQLiteStore]:
        store = SQLiteStore(tmp_path / "conformance.db")
        await store.open()
        yield store
        await store.close()


class TestPostgresStore(StoreConformance):
    @pytest.fixture
    async def store(self, pg_url: str) -> AsyncIterator[bf.Store]:
        store = open_store(pg_url)
        await store.open()
        yield store
        await store.close()
