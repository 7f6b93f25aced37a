"""An engine process for the crash-recovery tests; the test reads its stdout and SIGKILLs it.

    worker.py start DB SPEC [--max-concurrent N]   start the runs of SPEC, then run forever
    worker.py resume DB [--timeout S]              finish every run in DB, print results, exit
    worker.py hold DB                              hold the engine lock, run forever

SPEC is a JSON list of ``{"wf": <name in flows.py>, "input": ...}``. Lines on stdout:

    OPENED <epoch>            the engine is open (it holds the lock, orphans were taken over)
    RUN <index> <run_id>      engine.start returned for SPEC[index]
    STARTED_ALL               every run of SPEC was started
    PARKED <run_id> <status>  the store committed a run's park (waiting, or pending if woken)
    FINISHED <run_id> <status>
    RESULT <run_id> <json>    (resume) a top-level run completed with this output
    FAILED <run_id> <error>   (resume) a top-level run did not complete
    DONE                      (resume) everything ended; the engine is closed

plus the ``STARTED``/``ENTERED`` lines of flows.py. Nothing here sleeps or polls to synchronise:
the test waits for lines, and the store subclass reports commits as they return.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import batonflow as bf

FLOWS = Path(__file__).resolve().with_name("flows.py")


def say(*words: object) -> None:
    print(*words, flush=True)


class TracingStore(bf.SQLiteStore):
    """The SQLite store, announcing on stdout each park and finish once it is committed."""

    async def suspend_run(self, run_id: str, *args: Any, **kwargs: Any) -> bf.RunStatus:
        status = await super().suspend_run(run_id, *args, **kwargs)
        say("PARKED", run_id, status.value)
        return status

    async def finish_run(
        self, run_id: str, owner: str, status: bf.RunStatus, *args: Any, **kwargs: Any
    ) -> None:
        await super().finish_run(run_id, owner, status, *args, **kwargs)
        say("FINISHED", run_id, status.value)


async def start(db: str, spec: list[dict[str, Any]], max_concurrent: int) -> None:
    engine = bf.Engine(TracingStore(db), max_concurrent_runs=max_concurrent)
    async with engine:
        say("OPENED", time.time())
        for index, item in enumerate(spec):
            wf = bf.load_workflow(f"{FLOWS}:{item['wf']}")
            handle = await engine.start(wf, item.get("input"))
            say("RUN", index, handle.run_id)
        say("STARTED_ALL")
        await asyncio.Event().wait()  # until SIGKILL


async def resume(db: str, timeout: float) -> int:
    engine = bf.Engine(TracingStore(db))  # knows no workflow: runs bring their own reference
    async with engine:
        say("OPENED", time.time())
        runs = await engine.store.list_runs(limit=1_000_000)
        top = [r.id for r in runs if r.parent_id is None]
        outcomes = await asyncio.gather(
            *(engine.handle(run_id).result(timeout=timeout) for run_id in top),
            return_exceptions=True,
        )
        failures = 0
        for run_id, outcome in zip(top, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                failures += 1
                say("FAILED", run_id, f"{type(outcome).__name__}: {outcome}")
            else:
                say("RESULT", run_id, json.dumps(outcome))
    say("DONE")
    return 1 if failures else 0


async def hold(db: str) -> None:
    async with bf.Engine(db):
        say("OPENED", time.time())
        await asyncio.Event().wait()  # until SIGKILL


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    p_start = sub.add_parser("start")
    p_start.add_argument("db")
    p_start.add_argument("spec")
    p_start.add_argument("--max-concurrent", type=int, default=500)
    p_resume = sub.add_parser("resume")
    p_resume.add_argument("db")
    p_resume.add_argument("--timeout", type=float, default=30.0)
    p_hold = sub.add_parser("hold")
    p_hold.add_argument("db")
    args = parser.parse_args(argv)
    if args.mode == "start":
        asyncio.run(start(args.db, json.loads(args.spec), args.max_concurrent))
        return 0
    if args.mode == "resume":
        return asyncio.run(resume(args.db, args.timeout))
    asyncio.run(hold(args.db))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
