"""Run ids sort by creation time (UUIDv7 as 32 hex digits), so the runs index stays hot."""

from __future__ import annotations

import uuid
from pathlib import Path

import batonflow as bf
from batonflow.core._ids import time_ordered_id
from batonflow.testing import FakeClock


def test_ids_are_uuid7_hex_and_sort_by_time() -> None:
    ids = [time_ordered_id(1_700_000_000.0 + i / 1000) for i in range(50)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 50
    for value in ids:
        parsed = uuid.UUID(hex=value)
        assert (len(value), parsed.version, parsed.variant) == (32, 7, uuid.RFC_4122)
        assert int(value[:12], 16) // 1000 == 1_700_000_000  # the milliseconds lead
    assert time_ordered_id(5.0) != time_ordered_id(5.0)  # the same millisecond: random bits


@bf.workflow
async def noop(ctx: bf.Context, n: int) -> int:
    return n


async def test_the_engine_names_runs_in_creation_order(tmp_path: Path) -> None:
    clock = FakeClock()
    async with bf.Engine(tmp_path / "runs.db", clock=clock) as engine:
        ids = []
        for n in range(3):
            ids.append((await engine.start(noop, n)).run_id)
            await clock.advance(1)
        await engine.settle()
    assert ids == sorted(ids)
    assert all(int(i[:12], 16) // 1000 == int(clock.now()) - 3 + k for k, i in enumerate(ids))
