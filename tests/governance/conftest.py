"""Governance tests run their engines on sealed stores, as the CLI does: workflows that name
data subjects need one (a plain store would keep the ids in clear)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

import batonflow as bf
from batonflow.governance._subjects import wrap_store
from batonflow.testing import FakeClock
from conftest import EngineFactory


@pytest.fixture
def make_engine(store_url: str, clock: FakeClock) -> EngineFactory:
    """Open an engine on the test's database, sealed; another after closing one "restarts"."""

    @asynccontextmanager
    async def factory(**options: Any) -> AsyncIterator[bf.Engine]:
        options.setdefault("clock", clock)
        options.setdefault("rng", random.Random(7))
        async with bf.Engine(wrap_store(bf.open_store(store_url)), **options) as engine:
            yield engine

    return factory
