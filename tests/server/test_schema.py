"""Schemathesis against ``/openapi.json`` of a real server, every endpoint authenticated: no
5xx answers and no answers that break the schema. Bounded (a few examples an operation)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from server.harness import Server, make_token

pytestmark = pytest.mark.slow
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"


def test_schemathesis_finds_no_server_errors_or_schema_violations(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    token = asyncio.run(make_token(db))
    server = Server(db, tmp_path).start()
    try:
        st = Path(sys.executable).with_name("st")
        result = subprocess.run(
            [str(st), "run", f"{server.url}/openapi.json", "-H", f"Authorization: Bearer {token}",
             "--checks", CHECKS, "--max-examples", "4", "--generation-deterministic",
             "--exclude-path-regex", "stream$", "--request-timeout", "20", "--workers", "1",
             "--no-color"],
            capture_output=True, text=True, timeout=55, check=False, cwd=tmp_path,
        )  # fmt: skip
    finally:
        server.stop()
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-6000:]


def test_every_list_pages_the_same_way_in_the_schema() -> None:
    """Each list answers ``items`` and ``next_cursor`` and takes ``limit`` and ``cursor``;
    the start route documents its Idempotency-Key header and both of its answers."""
    from batonflow.server import create_app

    schema = create_app().openapi()
    components = schema["components"]["schemas"]
    lists = {}
    for path, operations in schema["paths"].items():
        get = operations.get("get")
        if get is None:
            continue
        ref = get["responses"]["200"].get("content", {}).get("application/json", {})
        name = ref.get("schema", {}).get("$ref", "").rpartition("/")[2]
        if name and "items" in components[name]["properties"]:
            lists[path] = {p["name"] for p in get.get("parameters", [])}
            assert "next_cursor" in components[name]["properties"], path
    assert set(lists) == {
        "/api/v1/runs", "/api/v1/workflows", "/api/v1/approvals", "/api/v1/alerts",
        "/api/v1/connectors", "/api/v1/identities", "/api/v1/tokens", "/api/v1/triggers",
    }  # fmt: skip
    for path, parameters in lists.items():
        assert {"limit", "cursor"} <= parameters, path
    start = schema["paths"]["/api/v1/runs"]["post"]
    assert {p["name"] for p in start["parameters"]} == {"idempotency-key"}
    assert {"200", "201"} <= set(start["responses"])
