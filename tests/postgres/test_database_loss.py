"""Database loss: the connections drop, or the PostgreSQL server restarts, in the middle of a load.

Workers (and the test's own store, which keeps sending events) block and retry with backoff,
then carry on: every run completes, every step is recorded once, and no run is executed by two
workers at the same time (a worker that could not renew a lease in time stops the run first).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

import batonflow as bf
from postgres.harness import Cluster, check_history, count_ended, submit

pytestmark = [pytest.mark.slow, pytest.mark.long]

RUNS = 300
DEADLINE = 240.0  # seconds for the whole load; never reached when all is well (even loaded)


def _app_named(url: str, name: str) -> str:
    return f"{url}&application_name={name}"


def _drop_connections(admin_url: str, name: str) -> int:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name=%s",
            (name,),
        ).fetchone()
    return int(row[0]) if row else 0


def _restart_server() -> None:
    versions = sorted(os.listdir("/etc/postgresql"), key=lambda v: [int(p) for p in v.split(".")])
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "restart"],
        check=True,
        capture_output=True,
        timeout=60,
    )


def _can_restart() -> str | None:
    if shutil.which("pg_ctlcluster") is None or not os.path.isdir("/etc/postgresql"):
        return "pg_ctlcluster is not installed"
    if os.geteuid() != 0:
        return "restarting the PostgreSQL server needs root"
    return None


def _count(url: str, run_ids: list[str]) -> tuple[int, int] | None:
    try:
        return count_ended(url, run_ids)
    except psycopg.OperationalError:
        return None  # the server is down: look again at the next poll


async def _load_through(
    url: str, tmp_path: Path, run_ids_inputs: int, disaster: str, admin_url: str, name: str
) -> None:
    rng = random.Random(6)
    cluster = Cluster(url, tmp_path, lease=2.0, poll=0.5, concurrency=50)
    store = bf.open_store(url)
    await store.open()
    try:
        for _ in range(3):
            cluster.spawn()
        inputs = [
            {"i": i, "nap": rng.choice([0.1, 0.5, 1.0]), "event": i % 3 == 0, "work": 0.05}
            for i in range(run_ids_inputs)
        ]
        run_ids = await submit(store, "chain", inputs)
        events = [f"k{i}" for i in range(0, run_ids_inputs, 3)]
        struck: list[int] = [run_ids_inputs // 4, run_ids_inputs // 2]
        deadline = time.monotonic() + DEADLINE
        while True:
            for _ in range(min(len(events), 5)):  # blocks and retries while the server is away
                await store.deliver_event("go", '"ok"', time.time(), key=events.pop())
            counts = _count(url, run_ids)
            if counts is not None:
                completed, failed = counts
                assert failed == 0, cluster.stderr_tail()
                if completed == run_ids_inputs:
                    break
                if struck and completed >= struck[0]:
                    struck.pop(0)
                    if disaster == "restart":
                        _restart_server()
                    else:
                        assert _drop_connections(admin_url, name) > 0
            assert time.monotonic() < deadline, f"{counts} of {run_ids_inputs}\n" + (
                cluster.stderr_tail()
            )
            await asyncio.sleep(0.1)  # bounded polling of the database, as an observer does
        assert not struck, "the load ended before every disaster struck"
        for worker in cluster.live():
            assert cluster.terminate(worker) == 0, cluster.stderr_tail()
        stats = await check_history(store, cluster, run_ids, ["s1", "s2", "s3"])
        assert not cluster.deaths.keys() - {w.pid for w in cluster.workers}
        print(disaster, stats)
    finally:
        cluster.close()
        await store.close()


async def test_dropped_connections_lose_and_double_nothing(
    pg_url: str, pg_admin_url: str, tmp_path: Path
) -> None:
    name = f"bf-loss-{os.getpid()}-{random.randrange(10**6)}"
    await _load_through(_app_named(pg_url, name), tmp_path, RUNS, "drop", pg_admin_url, name)


@pytest.mark.skipif(_can_restart() is not None, reason=str(_can_restart()))
async def test_a_server_restart_loses_and_doubles_nothing(
    pg_url: str, pg_admin_url: str, tmp_path: Path
) -> None:
    await _load_through(pg_url, tmp_path, RUNS, "restart", pg_admin_url, "")
