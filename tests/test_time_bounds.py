"""Times a run records are bounded to what a date can show: a sleep or a run timeout that would
end after 9999-12-31 (or is infinite or NaN) is refused where it is given, not recorded as a
wake-up time that `show` cannot print."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import batonflow as bf
from batonflow.testing import FakeClock

SECONDS = {"inf": math.inf, "nan": math.nan, "huge": 1e308, "before 1970": -1e12, "ok": 1.0}


@bf.workflow
async def sleeper(ctx: bf.Context, how_long: str) -> str:
    await ctx.sleep(SECONDS[how_long])
    return "woke"


@pytest.mark.parametrize("how_long", ["inf", "nan", "huge", "before 1970"])
async def test_an_impossible_sleep_faults_the_run(tmp_path: Path, how_long: str) -> None:
    async with bf.Engine(tmp_path / "t.db", clock=FakeClock(), workflows=[sleeper]) as engine:
        handle = await engine.start(sleeper, "ok")
        await engine.settle()
        bad = await engine.start(sleeper, how_long)
        await engine.settle()
        run = await engine.get_run(bad.run_id)
        assert run is not None
        assert run.status is bf.RunStatus.FAULTED
        assert "a sleep must end between 1970 and 9999-12-31T23:59:59Z" in (run.error_json or "")
        assert (await engine.get_run(handle.run_id)).status is bf.RunStatus.WAITING  # type: ignore[union-attr]


async def test_an_impossible_run_timeout_is_refused(tmp_path: Path) -> None:
    async with bf.Engine(tmp_path / "t.db", clock=FakeClock(), workflows=[sleeper]) as engine:
        with pytest.raises(bf.ConfigError, match="ends after 9999-12-31"):
            await engine.start(sleeper, "ok", timeout=1e300)
