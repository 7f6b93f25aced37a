"""LangGraph: a StateGraph classify -> log -> draft with the SQLite checkpointer, one thread_id
per workflow run.

The checkpointer puts the file in WAL (``setup()``) and sets no synchronous level, so SQLite's
default applies (FULL in this build); the benchmark sets synchronous=FULL explicitly on the
saver's connection. Graphs run with ``durability="sync"``: each step's checkpoint is committed
before the next step starts, as batonflow and DBOS do. (LangGraph's default, "async", writes it
while the next step already runs, so a power loss can lose a step that was reported done.)
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from typing import Any, TypedDict

import harness
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph


class State(TypedDict, total=False):
    body: str
    label: str
    logged: bool
    draft: str


def classify(state: State) -> State:
    return {"label": harness.classify_body(state["body"])}


def log(state: State) -> State:
    return {"logged": harness.log_body(state["label"])}


def draft(state: State) -> State:
    return {"draft": harness.draft_body(state["label"])}


async def aclassify(state: State) -> State:
    return classify(state)


async def alog(state: State) -> State:
    return log(state)


async def adraft(state: State) -> State:
    return draft(state)


def build(*, use_async: bool) -> StateGraph[State]:
    graph = StateGraph(State)
    graph.add_node("classify", aclassify if use_async else classify)
    graph.add_node("log", alog if use_async else log)
    graph.add_node("draft", adraft if use_async else draft)
    graph.add_edge(START, "classify")
    graph.add_edge("classify", "log")
    graph.add_edge("log", "draft")
    graph.add_edge("draft", END)
    return graph


def _output(state: dict[str, Any]) -> dict[str, Any]:
    return {"label": state["label"], "draft": state["draft"]}


# Unique per process: a store that already holds runs (the 100,000-workflow pass) has threads of
# earlier processes, and reusing one would continue it instead of starting a workflow.
_PROCESS = uuid.uuid4().hex[:12]


def _config(i: int, prefix: str) -> Any:
    return {"configurable": {"thread_id": f"{prefix}-{_PROCESS}-{i}"}}


def sequential(args: Any) -> tuple[harness.Timing, dict[str, Any]]:
    with SqliteSaver.from_conn_string(str(args.db)) as saver:
        seen = _pragmas_sync(saver.conn)
        app: CompiledStateGraph[Any] = build(use_async=False).compile(checkpointer=saver)

        def run(prefix: str) -> Any:
            def one(i: int) -> Any:
                out = app.invoke(
                    {"body": harness.EMAIL["body"]}, _config(i, prefix), durability="sync"
                )
                return _output(out)

            return one

        harness.run_sequential(run("warmup"), args.warmup)
        seen.update(_read_sync(saver.conn))
        timing = harness.run_sequential(run("timed"), args.n, args.db)
    return timing, seen


async def concurrent(args: Any) -> tuple[harness.Timing, dict[str, Any]]:
    async with AsyncSqliteSaver.from_conn_string(str(args.db)) as saver:
        shipped = (await (await saver.conn.execute("PRAGMA synchronous")).fetchone() or ["?"])[0]
        await saver.conn.execute("PRAGMA synchronous=FULL")
        app: CompiledStateGraph[Any] = build(use_async=True).compile(checkpointer=saver)

        def run(prefix: str) -> Any:
            async def one(i: int) -> Any:
                out = await app.ainvoke(
                    {"body": harness.EMAIL["body"]}, _config(i, prefix), durability="sync"
                )
                return _output(out)

            return one

        await harness.arun_sequential(run("warmup"), args.warmup)
        seen: dict[str, Any] = {"shipped_synchronous": shipped}
        for name in ("journal_mode", "synchronous"):
            row = await (await saver.conn.execute(f"PRAGMA {name}")).fetchone()
            seen[name] = row[0] if row else "?"
        timing = await harness.arun_concurrent(run("timed"), args.n, args.concurrency, args.db)
    return timing, seen


def _pragmas_sync(conn: sqlite3.Connection) -> dict[str, Any]:
    shipped = conn.execute("PRAGMA synchronous").fetchone()[0]
    conn.execute("PRAGMA synchronous=FULL")
    return {"shipped_synchronous": shipped}


def _read_sync(conn: sqlite3.Connection) -> dict[str, Any]:
    return {
        "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
        "synchronous": conn.execute("PRAGMA synchronous").fetchone()[0],
    }


def main() -> None:
    args = harness.parse_args()
    if args.mode == "sequential":
        timing, durability = sequential(args)
        style = 'SqliteSaver, graph.invoke(..., durability="sync") in a loop'
    else:
        timing, durability = asyncio.run(concurrent(args))
        style = (
            f"AsyncSqliteSaver, {args.concurrency} worker coroutines, each awaiting"
            f' graph.ainvoke(..., durability="sync")'
        )
    with sqlite3.connect(args.db) as conn:
        # A finished run has a checkpoint after its third node (steps count from -1, the input).
        verified = conn.execute(
            "SELECT count(DISTINCT thread_id) FROM checkpoints"
            " WHERE json_extract(CAST(metadata AS TEXT), '$.step') = 3"
        ).fetchone()[0]
    durability["shipped_journal_mode"] = "wal (set by the checkpointer's setup())"
    durability["how"] = (
        "PRAGMA synchronous=FULL on the saver's connection; journal as shipped (WAL)"
    )
    harness.report(args, timing, style=style, durability=durability, verified=verified)


if __name__ == "__main__":
    main()
