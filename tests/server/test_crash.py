"""A SIGKILL loses nothing that the API answered as accepted."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import pytest

from server.harness import Server, until

pytestmark = pytest.mark.slow


async def test_every_accepted_run_survives_sigkill(
    server_db: str, token: str, tmp_path: Path
) -> None:
    server = Server(server_db, tmp_path, ("--concurrency", "4")).start()
    accepted: list[str] = []

    async def start(client: httpx.AsyncClient, i: int) -> None:
        try:
            response = await client.post(
                "/api/v1/runs", json={"workflow": "greet", "input": {"name": f"n{i}"}}
            )
        except httpx.TransportError:
            return  # not answered: not accepted
        if response.status_code in (200, 201):
            accepted.append(response.json()["id"])

    async with server.client(token) as client:
        load = [asyncio.ensure_future(start(client, i)) for i in range(60)]
        await until(lambda: _some(accepted), timeout=30)
        server.stop(signal.SIGKILL)
        await asyncio.gather(*load)
    assert accepted, "the server accepted nothing before it was killed"
    restarted = Server(server_db, tmp_path).start()
    try:
        async with restarted.client(token) as client:
            for run_id in accepted:
                await until(lambda run_id=run_id: _completed(client, run_id), timeout=40)
    finally:
        restarted.stop()


async def _some(accepted: list[str]) -> bool:
    return len(accepted) >= 5


async def _completed(client: httpx.AsyncClient, run_id: str) -> bool:
    response = await client.get(f"/api/v1/runs/{run_id}")
    assert response.status_code == 200, f"accepted run {run_id} is gone: {response.text}"
    return bool(response.json()["status"] == "completed")
