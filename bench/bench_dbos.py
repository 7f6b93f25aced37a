"""DBOS Transact: the 3-step workflow with @DBOS.workflow / @DBOS.step on a SQLite system database.

DBOS's SQLite engine sets busy_timeout, foreign_keys and IMMEDIATE transactions on each connection
but no journal mode or synchronous level, so SQLite's defaults apply: a rollback journal
(journal_mode=DELETE) and synchronous=FULL, already power-safe. A SQLAlchemy ``connect`` listener
records what a fresh connection had, sets synchronous=FULL explicitly (so the benchmark does not
depend on how the local SQLite was compiled) and, with ``--journal wal``, switches the file to WAL,
the journal batonflow uses.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
from typing import Any

import harness
import sqlalchemy as sa
from dbos import DBOS


@DBOS.step()
def classify(text: str) -> str:
    return harness.classify_body(text)


@DBOS.step()
def log(label: str) -> bool:
    return harness.log_body(label)


@DBOS.step()
def draft(label: str) -> str:
    return harness.draft_body(label)


@DBOS.workflow()
def triage(email: dict[str, str]) -> dict[str, str]:
    label = classify(email["body"])
    log(label)
    text = draft(label)
    return {"label": label, "draft": text}


@DBOS.step()
async def aclassify(text: str) -> str:
    return harness.classify_body(text)


@DBOS.step()
async def alog(label: str) -> bool:
    return harness.log_body(label)


@DBOS.step()
async def adraft(label: str) -> str:
    return harness.draft_body(label)


@DBOS.workflow()
async def atriage(email: dict[str, str]) -> dict[str, str]:
    label = await aclassify(email["body"])
    await alog(label)
    text = await adraft(label)
    return {"label": label, "draft": text}


STYLES = {
    "threads-start": "{c} threads, each DBOS.start_workflow(triage) then handle.get_result()",
    "threads-call": "{c} threads, each calling the sync workflow triage() directly",
    "async": "{c} worker coroutines, each awaiting the async workflow atriage() directly",
}


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--journal", choices=("default", "wal"), default="default")
    parser.add_argument("--style", choices=tuple(STYLES), default="threads-call")


def _install_pragmas(wal: bool) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    @sa.event.listens_for(sa.Engine, "connect")
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        if "shipped_journal_mode" not in seen:
            seen["shipped_journal_mode"] = dbapi_conn.execute("PRAGMA journal_mode").fetchone()[0]
            seen["shipped_synchronous"] = dbapi_conn.execute("PRAGMA synchronous").fetchone()[0]
        if wal:
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA synchronous=FULL")
        seen["journal_mode"] = dbapi_conn.execute("PRAGMA journal_mode").fetchone()[0]
        seen["synchronous"] = dbapi_conn.execute("PRAGMA synchronous").fetchone()[0]

    return seen


def main() -> None:
    args = harness.parse_args(_options)
    durability = _install_pragmas(args.journal == "wal")
    DBOS(
        config={
            "name": "batonflow-bench",
            "system_database_url": f"sqlite:///{args.db}",
            "log_level": "WARNING",
        }
    )
    DBOS.launch()
    try:

        def call(i: int) -> Any:
            return triage(harness.EMAIL)

        def start(i: int) -> Any:
            return DBOS.start_workflow(triage, harness.EMAIL).get_result()

        async def acall(i: int) -> Any:
            return await atriage(harness.EMAIL)

        harness.run_sequential(call, args.warmup)
        if args.mode == "sequential":
            style = "calling the sync workflow triage() in a loop"
            timing = harness.run_sequential(call, args.n, args.db)
        elif args.style == "async":
            style = STYLES[args.style].format(c=args.concurrency)
            timing = _in_loop(acall, args)
        else:
            style = STYLES[args.style].format(c=args.concurrency)
            one = start if args.style == "threads-start" else call
            timing = harness.run_threads(one, args.n, args.concurrency, args.db)
    finally:
        DBOS.destroy()
    with sqlite3.connect(args.db) as conn:
        verified = conn.execute(
            "SELECT count(*) FROM workflow_status WHERE status='SUCCESS'"
        ).fetchone()[0]
    durability["how"] = "SQLAlchemy connect listener: PRAGMA synchronous=FULL" + (
        "; PRAGMA journal_mode=WAL" if args.journal == "wal" else " (journal left as shipped)"
    )
    harness.report(args, timing, style=style, durability=durability, verified=verified)


def _in_loop(acall: Any, args: argparse.Namespace) -> harness.Timing:
    async def go() -> harness.Timing:
        await harness.arun_sequential(acall, 5)  # warm the async path too
        return await harness.arun_concurrent(acall, args.n, args.concurrency, args.db)

    return asyncio.run(go())


if __name__ == "__main__":
    main()
