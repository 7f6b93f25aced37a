"""Chaos: worker processes SIGKILLed at random moments while 1,000 runs go through them.

Four ``batonflow worker`` processes share one PostgreSQL schema. 1,000 runs of a multi-step
workflow with durable sleeps and event waits are submitted; a worker is killed with SIGKILL at
a random moment again and again (at least 20 times) and a new one started in its place. Every
run must complete; the journal must hold each step once, recorded from an execution that
returned; every other execution must have been cut short by its worker's death; and no two
workers may have executed one run at the same time (see ``harness.check_history``).
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

import batonflow as bf
from postgres.harness import Cluster, check_history, count_ended, submit

pytestmark = [pytest.mark.slow, pytest.mark.long]  # 35 s quiet, more under load

RUNS = 1000
WORKERS = 4
MIN_KILLS = 20
KILLS = 25  # planned; at least MIN_KILLS must land before the load is done
DEADLINE = 150.0  # seconds for the whole load; never reached when all is well


async def test_sigkilled_workers_lose_no_run_and_double_no_step(
    pg_url: str, tmp_path: Path
) -> None:
    rng = random.Random(20261123)
    cluster = Cluster(pg_url, tmp_path, lease=2.0, poll=0.5, concurrency=40)
    store = bf.open_store(pg_url)
    await store.open()
    try:
        for _ in range(WORKERS):
            cluster.spawn()
        inputs = [
            {"i": i, "nap": rng.choice([0.05, 0.2, 0.5, 1.0]), "event": i % 4 == 0, "work": 0.1}
            for i in range(RUNS)
        ]
        run_ids = await submit(store, "chain", inputs)
        events = [f"k{i}" for i in range(0, RUNS, 4)]
        rng.shuffle(events)

        # Kill at random points of the load (by progress, so that every kill lands while there
        # is work in flight however fast the machine is), at a random moment of the poll.
        kill_at = sorted(rng.sample(range(10, RUNS - 100), KILLS))
        kills = 0
        deadline = time.monotonic() + DEADLINE
        while True:
            for _ in range(min(len(events), 10)):  # events trickle in while the chaos goes on
                await store.deliver_event("go", '"ok"', time.time(), key=events.pop())
            completed, failed = count_ended(pg_url, run_ids)
            assert failed == 0, cluster.stderr_tail()
            if completed == RUNS:
                break
            assert time.monotonic() < deadline, (
                f"{completed}/{RUNS} completed, {kills} kills\n{cluster.stderr_tail()}"
            )
            if kill_at and completed >= kill_at[0]:
                kill_at.pop(0)
                await asyncio.sleep(rng.uniform(0, 0.1))
                cluster.kill(rng.choice(cluster.live()))
                kills += 1
                cluster.spawn()
            await asyncio.sleep(0.1)  # bounded polling of the database, as an observer does

        for worker in cluster.live():
            assert cluster.terminate(worker) == 0, cluster.stderr_tail()
        stats = await check_history(store, cluster, run_ids, ["s1", "s2", "s3"])
        print(f"{kills} kills, {stats}")
        assert kills >= MIN_KILLS
        assert stats["reruns"] > 0, "no kill landed mid-step: the test proved little"
    finally:
        cluster.close()
        await store.close()
