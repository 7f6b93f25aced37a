"""What every system's benchmark module shares: the workload, the timing loops, the result line.

A system module (``bench_<system>.py``) is run as a script in its own process, once per mode:
it opens its store on ``--db`` (a fresh file), runs ``--warmup`` workflows untimed, then ``--n``
timed ones (one after another, or ``--concurrency`` at a time), and prints one ``RESULT {json}``
line. ``run.py`` starts those processes and writes the report.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import costs  # first: its hooks must see the system's connections (only when BENCH_COSTS=1)

STEPS = ("classify", "log", "draft")
EMAIL: dict[str, str] = {
    "subject": "Password reset",
    "body": "Hi, I cannot log in since this morning. Could you reset my password? Thanks, Ann",
}
LABEL = "routine"
DRAFT = "Thanks for writing: we are on it."
EXPECTED: dict[str, str] = {"label": LABEL, "draft": DRAFT}

# run.py finds the timed window in an strace log by these files' fsyncs.
MARK_START = "bench-mark-start"
MARK_END = "bench-mark-end"


# -- the step bodies: trivial on purpose, so the benchmark measures the engine ------------------
def classify_body(text: str) -> str:
    return LABEL


def log_body(label: str) -> bool:
    return True


def draft_body(label: str) -> str:
    return DRAFT


# -- command line ---------------------------------------------------------------------------------
def parse_args(
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("sequential", "concurrent"), required=True)
    parser.add_argument("--n", type=int, required=True, help="timed workflows")
    parser.add_argument("--warmup", type=int, default=20, help="untimed workflows first")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--db", type=Path, required=True, help="a fresh database file")
    if extra is not None:
        extra(parser)
    return parser.parse_args()


# -- timing -----------------------------------------------------------------------------------
@dataclass
class Timing:
    elapsed_s: float
    cpu_s: float
    latencies_ms: list[float]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _mark(db: Path, name: str) -> None:
    """fsync a marker file, so that an strace log shows where the timed window starts and ends;
    the counting pass also remembers its counters here."""
    costs.mark(name)
    fd = os.open(db.parent / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, b".")
        os.fsync(fd)
    finally:
        os.close(fd)


def _check(out: Any) -> None:
    if out != EXPECTED:
        raise AssertionError(f"workflow returned {out!r}, expected {EXPECTED!r}")


def run_sequential(one: Callable[[int], Any], n: int, db: Path | None = None) -> Timing:
    """Run ``one(i)`` for i in range(n), one after another; ``db`` marks the timed window."""
    latencies = []
    if db:
        _mark(db, MARK_START)
    cpu0, t0 = _cpu(), time.perf_counter()
    for i in range(n):
        s = time.perf_counter()
        _check(one(i))
        latencies.append((time.perf_counter() - s) * 1000)
    elapsed, cpu = time.perf_counter() - t0, _cpu() - cpu0
    if db:
        _mark(db, MARK_END)
    return Timing(elapsed, cpu, latencies)


def run_threads(
    one: Callable[[int], Any], n: int, concurrency: int, db: Path | None = None
) -> Timing:
    """``concurrency`` threads call ``one(i)`` until n calls are done."""
    counter = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[BaseException] = []

    def worker() -> None:
        mine = []
        try:
            while True:
                with lock:
                    i = next(counter)
                if i >= n:
                    break
                s = time.perf_counter()
                _check(one(i))
                mine.append((time.perf_counter() - s) * 1000)
        except BaseException as exc:  # reported after the join
            errors.append(exc)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    if db:
        _mark(db, MARK_START)
    cpu0, t0 = _cpu(), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed, cpu = time.perf_counter() - t0, _cpu() - cpu0
    if db:
        _mark(db, MARK_END)
    if errors:
        raise errors[0]
    return Timing(elapsed, cpu, latencies)


async def arun_sequential(
    one: Callable[[int], Awaitable[Any]], n: int, db: Path | None = None
) -> Timing:
    latencies = []
    if db:
        _mark(db, MARK_START)
    cpu0, t0 = _cpu(), time.perf_counter()
    for i in range(n):
        s = time.perf_counter()
        _check(await one(i))
        latencies.append((time.perf_counter() - s) * 1000)
    elapsed, cpu = time.perf_counter() - t0, _cpu() - cpu0
    if db:
        _mark(db, MARK_END)
    return Timing(elapsed, cpu, latencies)


async def arun_concurrent(
    one: Callable[[int], Awaitable[Any]], n: int, concurrency: int, db: Path | None = None
) -> Timing:
    """``concurrency`` worker coroutines await ``one(i)`` until n calls are done."""
    counter = itertools.count()
    latencies: list[float] = []

    async def worker() -> None:
        while (i := next(counter)) < n:
            s = time.perf_counter()
            _check(await one(i))
            latencies.append((time.perf_counter() - s) * 1000)

    if db:
        _mark(db, MARK_START)
    cpu0, t0 = _cpu(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - t0, _cpu() - cpu0
    if db:
        _mark(db, MARK_END)
    return Timing(elapsed, cpu, latencies)


# -- the result line --------------------------------------------------------------------------
def report(
    args: argparse.Namespace,
    timing: Timing,
    *,
    style: str,
    durability: dict[str, Any],
    verified: int,
    extra: dict[str, Any] | None = None,
) -> None:
    """Print the one line run.py reads. ``verified`` counts completed workflows in the store."""
    n = args.n
    lat = sorted(timing.latencies_ms)
    result = {
        "mode": args.mode,
        "n": n,
        "warmup": args.warmup,
        "concurrency": args.concurrency if args.mode == "concurrent" else 1,
        "style": style,
        "elapsed_s": timing.elapsed_s,
        "wf_per_s": n / timing.elapsed_s,
        "ms_per_step": timing.elapsed_s * 1000 / (n * len(STEPS)),
        "latency_mean_ms": statistics.fmean(lat),
        "latency_p50_ms": lat[len(lat) // 2],
        "latency_p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
        "cpu_ms_per_wf": timing.cpu_s * 1000 / n,
        "cpu_utilisation": timing.cpu_s / timing.elapsed_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "durability": durability,
        "verified_completed": verified,
        "extra": extra or {},
    }
    counted = costs.window(MARK_START, MARK_END, n)
    if counted is not None:
        result["costs"] = counted
    if verified < n + args.warmup:
        raise AssertionError(f"only {verified} completed workflows in the store, ran {n}+warm-up")
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
