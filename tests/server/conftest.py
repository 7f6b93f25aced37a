from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from server.harness import Server, make_token


@pytest.fixture(params=["sqlite", "postgres"])
def server_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "runs.db")
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def token(server_db: str) -> str:
    return await make_token(server_db)


@pytest.fixture
def server(server_db: str, token: str, tmp_path: Path) -> Iterator[Server]:
    running = Server(server_db, tmp_path).start()
    try:
        yield running
    finally:
        running.stop()
