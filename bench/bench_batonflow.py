"""batonflow: the 3-step workflow on its embedded SQLite store (WAL, synchronous=FULL)."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import harness

import batonflow as bf


@bf.step
async def classify(text: str) -> str:
    return harness.classify_body(text)


@bf.step
async def log(label: str) -> bool:
    return harness.log_body(label)


@bf.step
async def draft(label: str) -> str:
    return harness.draft_body(label)


@bf.workflow(name="triage")
async def triage(ctx: bf.Context, email: dict[str, str]) -> dict[str, str]:
    label = await ctx.step(classify, email["body"])
    await ctx.step(log, label)
    text = await ctx.step(draft, label)
    return {"label": label, "draft": text}


def _pragmas(store: Any) -> dict[str, Any]:
    """Read the settings on the store's own read connection (opened by the same ``connect()``
    as its writer's). Private attribute: a measurement, not an API."""
    conn = getattr(store, "_reader", None)
    if conn is None:
        return {"journal_mode": "?", "synchronous": "?"}
    return {
        "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
        "synchronous": conn.execute("PRAGMA synchronous").fetchone()[0],
    }


def _commits(store: Any) -> int:
    """Write transactions the SQLite store has committed (not part of the Store protocol)."""
    return int(store.commits)


async def main() -> None:
    args = harness.parse_args()
    async with bf.Engine(args.db) as engine:

        async def one(i: int) -> Any:
            return await engine.run(triage, harness.EMAIL)

        await harness.arun_sequential(one, args.warmup)
        durability = _pragmas(engine.store)
        commits0 = _commits(engine.store)
        if args.mode == "sequential":
            timing = await harness.arun_sequential(one, args.n, args.db)
        else:
            timing = await harness.arun_concurrent(one, args.n, args.concurrency, args.db)
        commits = _commits(engine.store) - commits0
    with sqlite3.connect(args.db) as conn:
        verified = conn.execute("SELECT count(*) FROM runs WHERE status='completed'").fetchone()[0]
    durability["how"] = "batonflow's own connect(): PRAGMA journal_mode=WAL; synchronous=FULL"
    style = (
        "await engine.run() in a loop"
        if args.mode == "sequential"
        else f"{args.concurrency} worker coroutines, each awaiting engine.run() in a loop"
    )
    harness.report(
        args,
        timing,
        style=style,
        durability=durability,
        verified=verified,
        extra={"commits_per_wf": commits / args.n},
    )


if __name__ == "__main__":
    asyncio.run(main())
