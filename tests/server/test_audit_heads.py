"""`batonflow serve` signs the trail's head itself and appends it to the configured anchor."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from batonflow.cli._app import app
from batonflow.governance import _audit
from batonflow.governance._anchor import read_anchor
from server.harness import Server, make_token, until

pytestmark = pytest.mark.slow


def test_serve_signs_heads_into_the_anchor_and_verify_checks_them(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    _audit.generate_signing_key(tmp_path / "audit.key")
    config = tmp_path / "batonflow.toml"  # serve runs in tmp_path and reads it from there
    config.write_text(
        '[governance.audit]\npublic_key = "audit.key.pub"\nsigning_key = "audit.key"\n'
        'anchor = "anchor.jsonl"\nsign_every = 1\nsign_interval = 3600\n'
    )
    asyncio.run(_serve_one_run(db, tmp_path))
    heads = read_anchor(tmp_path / "anchor.jsonl")
    assert heads  # signed while serving, and once more on the way out
    result = CliRunner().invoke(
        app, ["--config", str(config), "audit", "verify", "--db", db, "--json"]
    )
    assert result.exit_code == 0, result.output
    verified = json.loads(result.stdout)
    assert verified["signed_heads"] >= 2  # the stored copies and the anchored ones
    assert heads[-1].seq >= verified["head_seq"] - 1  # only its own audit.signed entry after


async def _serve_one_run(db: str, cwd: Path) -> None:
    token = await make_token(db)
    server = Server(db, cwd).start()
    try:
        async with server.client(token) as client:
            started = await client.post(
                "/api/v1/runs", json={"workflow": "greet", "input": {"name": "ada"}}
            )
            assert started.status_code in (200, 201, 202), started.text
            run_id = started.json()["id"]

            async def ended() -> bool:
                run = (await client.get(f"/api/v1/runs/{run_id}")).json()
                return bool(run["status"] == "completed")

            await until(ended)
    finally:
        assert server.stop() == 0, server.log.read_text()
