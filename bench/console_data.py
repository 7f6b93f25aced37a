"""The console benchmark's store: 100,000 runs of five workflows over 30 days, in every status,
built through the Store protocol (so it is a store batonflow itself could have written) and
kept between benchmark runs: building takes minutes, measuring seconds.

    .venv/bin/python bench/console_data.py --runs 100000    # builds or reuses the cache

Creates go through the store concurrently, so SQLite's group commit writes hundreds of runs per
transaction. Deterministic: the same ``--runs`` builds the same runs (ids, times, statuses).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import batonflow as bf
from batonflow.store import NewRun

#: Bumped when what the builder makes changes: an older cache is rebuilt, not reused.
VERSION = 1
CACHE = Path(__file__).resolve().parent / ".cache"
WORKFLOWS = ("triage", "refund", "kyc-check", "newsletter", "claims")
STARTERS = ("mailbox", "alice", "bob", "webhook:crm", "schedule:nightly")
#: status -> share of runs (the rest stay PENDING)
SHARES = {"completed": 0.70, "faulted": 0.08, "cancelled": 0.05}
DAY = 86_400.0
BATCH = 400
OWNER = "bench-builder"


def cache_path(runs: int) -> Path:
    return CACHE / f"console-runs-{runs}-v{VERSION}.db"


def _plan(runs: int, seed: int = 12) -> list[tuple[NewRun, str]]:
    """Each run to create, newest last, with the status it ends in."""
    rng = random.Random(seed)
    start = 1_764_547_200.0  # 2025-12-01 00:00 UTC: fixed, so every build is the same
    plan = []
    for index in range(runs):
        created = start + 30 * DAY * index / runs
        roll = rng.random()
        ending, edge = "pending", 0.0
        for status, share in SHARES.items():
            edge += share
            if roll < edge:
                ending = status
                break
        workflow = WORKFLOWS[index % len(WORKFLOWS)]
        message = f"msg-{index:06d}@{rng.choice(('bank.test', 'mail.test', 'crm.test'))}"
        run = NewRun(
            id=f"r{index:07d}", workflow=workflow, workflow_ref=None,
            input_json=json.dumps({"subject": f"enquiry {index}", "message": message}),
            status=bf.RunStatus.RUNNING if ending != "pending" else bf.RunStatus.PENDING,
            owner=OWNER if ending != "pending" else None,
            lease_until=created + 3600 if ending != "pending" else None, created_at=created,
            idempotency_key=message, started_by=STARTERS[index % len(STARTERS)],
        )  # fmt: skip
        plan.append((run, ending))
    return plan


async def _create(store: bf.Store, run: NewRun, ending: str) -> None:
    await store.create_run(run)
    at = run.created_at + 42.0
    if ending in ("completed", "faulted"):
        status = bf.RunStatus.COMPLETED if ending == "completed" else bf.RunStatus.FAULTED
        output = json.dumps({"label": "billing"}) if ending == "completed" else None
        error = None if output else json.dumps({"type": "TimeoutError", "message": "crm timed out"})
        await store.finish_run(run.id, OWNER, status, output, error, [], [], at)
    elif ending == "cancelled":
        await store.release_run(run.id, OWNER, at)
        await store.transition(run.id, bf.RunStatus.CANCELLED, at, actor="alice")


async def _in_batches(work: list[Callable[[], Awaitable[None]]], report: bool) -> None:
    began = time.perf_counter()
    for first in range(0, len(work), BATCH):
        await asyncio.gather(*(w() for w in work[first : first + BATCH]))
        if report and (first // BATCH) % 25 == 0:
            print(f"  {first + BATCH} runs ({time.perf_counter() - began:.0f} s)", flush=True)


async def build(runs: int, path: Path | None = None, *, report: bool = True) -> Path:
    """The store of ``runs`` runs at ``path`` (default: the cache), built unless it exists."""
    path = path or cache_path(runs)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.db")
    for stale in path.parent.glob(partial.name + "*"):
        stale.unlink()
    store = bf.open_store(str(partial))
    await store.open()
    try:
        await store.acquire_worker(OWNER, time.time())
        plan = _plan(runs)

        def job(run: NewRun, ending: str) -> Callable[[], Awaitable[None]]:
            return lambda: _create(store, run, ending)

        await _in_batches([job(r, e) for r, e in plan], report)
        found = sum((await store.count_runs()).values())
        if found != runs:
            raise SystemExit(f"built {found} runs, expected {runs}")
    finally:
        await store.close()
    _promote(partial, path)
    return path


def _promote(partial: Path, path: Path) -> None:
    """Only a complete store becomes the cache (its WAL, normally gone at close, with it)."""
    for suffix in ("-wal", "-shm"):
        if Path(f"{partial}{suffix}").exists():
            Path(f"{partial}{suffix}").rename(f"{path}{suffix}")
    partial.rename(path)
    Path(f"{partial}.engine-lock").unlink(missing_ok=True)  # the builder's, released


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    args = parser.parse_args()
    began = time.perf_counter()
    path = asyncio.run(build(args.runs))
    print(f"{path} ({time.perf_counter() - began:.1f} s)")


if __name__ == "__main__":
    main()
