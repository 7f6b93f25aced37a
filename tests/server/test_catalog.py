"""A document deployed through one ``serve`` process is listed, started and run by another on
the same PostgreSQL store, without a restart (``run: workflow`` included)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from server.harness import Server, make_token, until

pytestmark = pytest.mark.slow

CHILD = """\
document: {dsl: '1.0.3', namespace: office, name: double, version: '1.0.0'}
do:
  - answer:
      set:
        doubled: ${ .n * 2 }
"""
PARENT = """\
document: {dsl: '1.0.3', namespace: office, name: caller, version: '1.0.0'}
do:
  - delegate:
      run:
        workflow:
          namespace: office
          name: double
          version: latest
          input: {n: '${ .n }'}
"""
YAML = {"content-type": "application/yaml"}


async def _ended(client: httpx.AsyncClient, run_id: str) -> dict[str, Any] | None:
    body: dict[str, Any] = (await client.get(f"/api/v1/runs/{run_id}")).json()
    return body if body["status"] in ("completed", "faulted") else None


async def test_a_deployed_document_runs_on_every_process(pg_url: str, tmp_path: Path) -> None:
    token = await make_token(pg_url)
    api_only = Server(pg_url, tmp_path, ("--no-workers",)).start()
    worker = Server(pg_url, tmp_path).start()  # started before anything was deployed
    try:
        async with api_only.client(token) as client:
            for text in (CHILD, PARENT):
                deployed = await client.post("/api/v1/workflows", content=text, headers=YAML)
                assert deployed.status_code == 201, deployed.text
            # recorded by the API-only process, run by the other, whose runtime finds the
            # parent in the run and the child in the store
            first = await _start(client, {"n": 21})
            done = await until(lambda: _ended(client, first))
            assert (done["status"], done["output"]) == ("completed", {"doubled": 42}), done
            # a newer version deployed on one is the latest on the other at once
            newer = CHILD.replace("'1.0.0'", "'1.1.0'").replace("* 2", "* 3")
            assert (await client.post("/api/v1/workflows", content=newer, headers=YAML)).is_success
            second = await _start(client, {"n": 2})
            done = await until(lambda: _ended(client, second))
            assert done["output"] == {"doubled": 6}, done
        async with worker.client(token) as other:
            listed = (await other.get("/api/v1/workflows")).json()["items"]
            assert [(w["name"], w["version"]) for w in listed if w["kind"] == "document"] == [
                ("office/caller", "1.0.0"), ("office/double", "1.0.0"), ("office/double", "1.1.0")
            ]  # fmt: skip
            started = await other.post(
                "/api/v1/runs", json={"workflow": "office/double", "input": {"n": 5}}
            )
            assert started.json()["status"] in ("running", "completed"), started.text
            done = await until(lambda: _ended(other, started.json()["id"]))
            assert done["output"] == {"doubled": 15}
    finally:
        api_only.stop()
        worker.stop()


async def _start(client: httpx.AsyncClient, data: dict[str, Any]) -> str:
    accepted = await client.post("/api/v1/runs", json={"workflow": "office/caller", "input": data})
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["status"] == "pending"  # the API-only process only records it
    run_id: str = accepted.json()["id"]
    return run_id
