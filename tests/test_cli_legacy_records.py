"""Records written before values were bounded (an infinite wake-up time, a lone surrogate in an
input) still read back: `show`, `show --json`, `list` and `audit export` print them instead of
crashing, and `--json` output stays JSON."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import batonflow as bf
from batonflow.testing import FakeClock

BIN = Path(sys.executable).parent / "batonflow"


@bf.workflow
async def nap(ctx: bf.Context, text: str) -> str:
    await ctx.sleep(5)
    return text


async def _parked_run(path: Path) -> str:
    async with bf.Engine(path, clock=FakeClock(), workflows=[nap]) as engine:
        handle = await engine.start(nap, "ok")
        await engine.settle()
        return handle.run_id


@pytest.mark.slow
def test_records_from_before_the_bounds_still_read_back(tmp_path: Path) -> None:
    path = tmp_path / "legacy.db"
    run_id = asyncio.run(_parked_run(path))
    with sqlite3.connect(path) as conn:  # what an older batonflow let through
        conn.execute(
            "UPDATE runs SET wake_at=?, input_json=? WHERE id=?",
            (float("inf"), '"\\ud800"', run_id),
        )
        conn.execute("UPDATE steps SET wake_at=? WHERE run_id=?", (float("inf"), run_id))
    for args in (
        ["show", run_id],
        ["show", run_id, "--json"],
        ["list"],
        ["list", "--json"],
        ["audit", "export"],
    ):
        result = subprocess.run(
            [str(BIN), *args, "--db", str(path)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, (args, result.stderr)
        assert "Traceback" not in result.stderr
        if "--json" in args:
            json.loads(result.stdout)
    shown = subprocess.run(
        [str(BIN), "show", run_id, "--json", "--db", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "\\\\ud800" in shown.stdout or "\\ud800" in shown.stdout
