"""Console benchmark: server time of the runs page (``/runs``: the first page, and filtered by
status, by workflow and by text) over a store of 100,000 runs, through the real application
(``create_app`` with its console, signed in with a session cookie, over httpx's ASGI
transport, so the time is the server's: routing, session, query, template). Target: p99 under
300 ms. Not a timed test: the numbers depend on the machine.

    .venv/bin/python bench/bench_console.py                 # builds the store once (~90 s)
    .venv/bin/python bench/bench_console.py --runs 2000 --requests 20    # a smoke run

Writes its own section of ``docs/benchmarks.md`` (between the markers below; ``run.py``
keeps it when it rewrites the rest) and prints the numbers as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from console_data import build
from console_section import END, START, write_section

import batonflow as bf
from batonflow.configuration import Setup
from batonflow.governance._identity import create_identity, local_identity
from batonflow.governance._passwords import set_password
from batonflow.server._app import ServeOptions, create_app

REPO = Path(__file__).resolve().parents[1]
TARGET_MS = 300.0
PASSWORD = "benchmark password 1"
SCENARIOS = {
    "first page": "/runs",
    "status=faulted": "/runs?status=faulted",
    "workflow=refund": "/runs?workflow=refund",
    "text=msg-09": "/runs?text=msg-09",
    "status + workflow": "/runs?status=completed&workflow=kyc-check",
}


async def _seed_reader(db: str) -> None:
    store = bf.open_store(db)
    await store.open()
    try:
        now = time.time()
        me = await create_identity(store, "bench", actor=local_identity(), now=now,
                                   roles=["admin"])  # fmt: skip
        await set_password(store, "bench", PASSWORD, actor=me, now=now)
    finally:
        await store.close()


async def _signed_in(client: httpx.AsyncClient) -> None:
    await client.get("/sign-in")
    form = {"name": "bench", "password": PASSWORD, "next": "/",
            "csrf": client.cookies.get("bf_csrf", "")}  # fmt: skip
    reply = await client.post("/sign-in", data=form)
    if reply.status_code != 303 or "bf_session" not in client.cookies:
        raise SystemExit(f"sign-in failed: {reply.status_code} {reply.text[:300]}")


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def measure(db: str, requests: int, warmup: int) -> dict[str, Any]:
    app = create_app(Setup.load(None), ServeOptions(db=db, workers=False))
    results: dict[str, Any] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            await _signed_in(client)
            for name, path in SCENARIOS.items():
                times = []
                rows = 0
                for index in range(warmup + requests):
                    began = time.perf_counter()
                    reply = await client.get(path)
                    elapsed = (time.perf_counter() - began) * 1000
                    if reply.status_code != 200:
                        raise SystemExit(f"{path}: {reply.status_code} {reply.text[:300]}")
                    if index >= warmup:
                        times.append(elapsed)
                    rows = len(re.findall(r'<a href="/runs/[^"]+" class="mono">', reply.text))
                results[name] = {
                    "path": path, "rows": rows, "p50_ms": round(statistics.median(times), 1),
                    "p99_ms": round(_percentile(times, 99), 1), "max_ms": round(max(times), 1),
                    "n": len(times),
                }  # fmt: skip
    return results


def render(data: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| {name} | `{r['path']}` | {r['rows']} | {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} |"
        f" {'yes' if r['p99_ms'] < TARGET_MS else '**no**'} |"
        for name, r in data["scenarios"].items()
    )
    env = data["env"]
    return f"""{START}
## Console: the runs page over {data["runs"]:,} runs

Server time of rendering `/runs` (the console's runs list: 50 runs a page, newest first) over
a SQLite store of {data["runs"]:,} runs (five workflows, every status, 30 days), through the
real application with a signed-in session (httpx's ASGI transport: routing, session lookup,
the store's query, the template; no network). {data["requests"]} requests per row after
{data["warmup"]} warm-up ones, one at a time. Target: p99 under {TARGET_MS:.0f} ms.

| filter | path | runs shown | p50 ms | p99 ms | max ms | p99 < {TARGET_MS:.0f} ms |
|---|---|---|---|---|---|---|
{rows}

- Store: built by `bench/console_data.py` through the Store protocol and cached in
  `bench/.cache` (each benchmark run works on a copy); SQLite {env["sqlite"]}, Python
  {env["python"]}, {env["cpus"]} CPUs (shared with other work), {env["when"]}.
- Run: `make -C bench console` (or `.venv/bin/python bench/bench_console.py`).
{END}
"""


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    cached = await build(args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "runs.db")
        shutil.copyfile(cached, db)  # the cache stays as built
        await _seed_reader(db)
        scenarios = await measure(db, args.requests, args.warmup)
    data = {
        "runs": args.runs, "requests": args.requests, "warmup": args.warmup,
        "scenarios": scenarios,
        "env": {"sqlite": sqlite3.sqlite_version, "python": platform.python_version(),
                "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%d", time.gmtime())},
    }  # fmt: skip
    print(json.dumps(data, indent=2))
    if not args.no_write:
        write_section(args.out, render(data))


if __name__ == "__main__":
    asyncio.run(main())
