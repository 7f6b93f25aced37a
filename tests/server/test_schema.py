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
