from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import batonflow as bf
from batonflow.testing import FakeClock

EngineFactory = Callable[..., AbstractAsyncContextManager[bf.Engine]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


@pytest.fixture
def make_engine(db_path: Path, clock: FakeClock) -> EngineFactory:
    """Open an engine on the test's database; open another after closing one to "restart"."""

    @asynccontextmanager
    async def factory(**options: Any) -> AsyncIterator[bf.Engine]:
        options.setdefault("clock", clock)
        options.setdefault("rng", random.Random(7))
        async with bf.Engine(db_path, **options) as engine:
            yield engine

    return factory


@pytest.fixture
async def engine(make_engine: EngineFactory) -> AsyncIterator[bf.Engine]:
    async with make_engine() as engine:
        yield engine
