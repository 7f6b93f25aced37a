"""One worker process of the PostgreSQL benchmark (``pg_run.py`` starts 1, 2 or 4 of them).

It opens its system on ``--url`` (the same PostgreSQL database as its sibling workers), runs
``--warmup`` workflows untimed, prints ``READY``, waits for ``GO`` on stdin (so all workers start
together), runs its ``--n`` timed workflows (``--concurrency`` in flight, or one after another),
and prints one ``RESULT {json}`` line with its wall-clock window and every latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from typing import Any

import harness


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--system", choices=("batonflow", "dbos"), required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--mode", choices=("sequential", "concurrent"), required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=32)
    return ap.parse_args()


def _ready_then_go() -> None:
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    if sys.stdin.readline().strip() != "GO":
        raise SystemExit("no GO")


def _result(args: argparse.Namespace, window: tuple[float, float], timing: harness.Timing) -> None:
    line = {
        "t0": window[0],
        "t1": window[1],
        "n": args.n,
        "cpu_s": timing.cpu_s,
        "latencies_ms": [round(x, 3) for x in timing.latencies_ms],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    sys.stdout.write("RESULT " + json.dumps(line) + "\n")
    sys.stdout.flush()


async def _batonflow(args: argparse.Namespace) -> None:
    import bench_batonflow

    import batonflow as bf

    async with bf.Engine(args.url) as engine:

        async def one(i: int) -> Any:
            return await engine.run(bench_batonflow.triage, harness.EMAIL)

        await harness.arun_sequential(one, args.warmup)
        _ready_then_go()
        t0 = time.time()
        if args.mode == "sequential":
            timing = await harness.arun_sequential(one, args.n)
        else:
            timing = await harness.arun_concurrent(one, args.n, args.concurrency)
        _result(args, (t0, time.time()), timing)


def _dbos(args: argparse.Namespace) -> None:
    import bench_dbos
    from dbos import DBOS

    DBOS(
        config={
            "name": "batonflow-bench",
            "system_database_url": args.url,
            "log_level": "WARNING",
        }
    )
    DBOS.launch()
    try:

        def one(i: int) -> Any:
            return bench_dbos.triage(harness.EMAIL)

        harness.run_sequential(one, args.warmup)
        _ready_then_go()
        t0 = time.time()
        if args.mode == "sequential":
            timing = harness.run_sequential(one, args.n)
        else:
            timing = harness.run_threads(one, args.n, args.concurrency)
        _result(args, (t0, time.time()), timing)
    finally:
        DBOS.destroy()


def main() -> None:
    args = _args()
    os.environ.setdefault("DBOS__VMID", f"bench-{os.getpid()}")  # one executor id per process
    if args.system == "batonflow":
        asyncio.run(_batonflow(args))
    else:
        _dbos(args)


if __name__ == "__main__":
    main()
