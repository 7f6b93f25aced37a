"""Timer lateness under a backlog: do durable timers fire on time while thousands of new runs
wait to be claimed?

A batonflow engine (the embedded SQLite store by default, or ``--db postgresql://...``) starts
``--timers`` runs that each sleep a random 0.1-1 s, then at once ``--backlog`` new runs of the
3-step workflow, more than its ``--slots`` (``max_concurrent_runs``) can take: the rest wait,
pending, to be claimed. Each sleeper records when it really woke; its lateness is that minus
the time it asked for. Prints one JSON object: lateness p50/p90/p99/max in ms, the poll
interval, and how long the backlog took to drain. `bench/run.py` runs it and puts it in the report.

    python bench/bench_timers.py --backlog 5000 --timers 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import batonflow as bf


@bf.step
async def work(label: str) -> str:
    return label.upper()


@bf.workflow(name="backlog")
async def backlog(ctx: bf.Context, n: int) -> str:
    label = await ctx.step(work, f"run {n}")
    await ctx.step(work, label)
    return await ctx.step(work, label)


@bf.step
def woke() -> float:
    return time.time()


@bf.workflow(name="sleeper")
async def sleeper(ctx: bf.Context, seconds: float) -> float:
    asked = await ctx.now() + seconds
    await ctx.sleep(seconds)
    return float(await ctx.step(woke)) - asked


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def measure(
    db: str, backlog_size: int, timers: int, poll: float, slots: int
) -> dict[str, Any]:
    rng = random.Random(7)
    async with bf.Engine(
        db, workflows=[backlog, sleeper], poll_interval=poll, max_concurrent_runs=slots
    ) as engine:
        sleepers = [await engine.start(sleeper, rng.uniform(0.1, 1.0)) for _ in range(timers)]
        started = time.monotonic()
        handles: list[bf.RunHandle[str]] = []
        for first in range(0, backlog_size, 250):  # queued faster than 32 slots drain it
            chunk = range(first, min(first + 250, backlog_size))
            handles += await asyncio.gather(*(engine.start(backlog, n) for n in chunk))
        queued_s = time.monotonic() - started
        lateness = [float(await handle.result()) for handle in sleepers]
        for handle in handles:
            await handle.result()
        drained_s = time.monotonic() - started
    ms = [value * 1000 for value in lateness]
    return {
        "store": "postgresql" if db.startswith("postgres") else "sqlite",
        "backlog": backlog_size,
        "timers": timers,
        "poll_s": poll,
        "max_concurrent_runs": slots,
        "lateness_ms": {
            "p50": round(statistics.median(ms), 1),
            "p90": round(_percentile(ms, 0.90), 1),
            "p99": round(_percentile(ms, 0.99), 1),
            "max": round(max(ms), 1),
        },
        "within_poll": sum(value <= poll for value in lateness),
        "backlog_queued_s": round(queued_s, 2),
        "backlog_drained_s": round(drained_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="a store URL (default: a fresh SQLite file)")
    parser.add_argument("--backlog", type=int, default=5000, help="new runs queued at once")
    parser.add_argument("--timers", type=int, default=50, help="sleeping runs to time")
    parser.add_argument("--poll", type=float, default=1.0, help="the engine's poll interval (s)")
    parser.add_argument("--slots", type=int, default=32, help="the engine's max_concurrent_runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="batonflow-timers-") as tmp:
        db = args.db or str(Path(tmp) / "timers.db")
        result = asyncio.run(measure(db, args.backlog, args.timers, args.poll, args.slots))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
