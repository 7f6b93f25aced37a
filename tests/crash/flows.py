"""Workflows for the crash-recovery tests, loaded by path in every engine process.

Every step appends JSON lines to the side-effect log named by ``CRASH_LOG`` (opened with
O_APPEND and fsync'd, so a line written just before a SIGKILL survives): ``begin`` when the step
function starts and ``end`` when it returns. ``CRASH_GEN`` tags the engine generation (1: the
process that is killed, 2: the one that recovers).

A step asked to block (``block=True`` in its arguments) does so only while ``CRASH_BLOCK=1``: it
prints ``STARTED <tag> <run_id> <step_id>`` on stdout and then waits for something that never
happens, so the SIGKILL lands in the middle of it. The recovering engine runs without
``CRASH_BLOCK`` and the same step completes.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import batonflow as bf


def _blocking() -> bool:
    return os.environ.get("CRASH_BLOCK") == "1"


def _log(event: str, tag: str) -> None:
    info = bf.current_step()
    line = json.dumps(
        {
            "gen": os.environ.get("CRASH_GEN", "?"),
            "pid": os.getpid(),
            "event": event,
            "run": info.run_id,
            "step": info.step_id,
            "tag": tag,
            "key": info.idempotency_key,
            "attempt": info.attempt,
            "t": time.time(),
        }
    )
    fd = os.open(os.environ["CRASH_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _say(*words: object) -> None:
    print(*words, flush=True)


async def _hang() -> None:
    await asyncio.Event().wait()  # nobody ever sets it: only SIGKILL ends this


async def work(tag: str, value: str, block: bool = False) -> str:
    _log("begin", tag)
    if block and _blocking():
        info = bf.current_step()
        _say("STARTED", tag, info.run_id, info.step_id)
        await _hang()
    await asyncio.sleep(0)  # a real await point, like any I/O a step would do
    _log("end", tag)
    return f"{tag}({value})"


def _step(ctx: bf.Context, tag: str, value: str, block: bool = False) -> Any:
    """One journaled call of ``work``, named after ``tag`` so the journal shows which it was."""
    return ctx.step(bf.step(work, name=tag, retry=bf.Retry.never()), tag, value, block)


@bf.workflow
async def three_steps(ctx: bf.Context, inp: dict[str, Any]) -> str:
    """s1 -> s2 -> s3; ``block`` names the step that hangs, ``hold`` hangs before any step."""
    if inp.get("hold") and _blocking():
        _say("ENTERED", ctx.run_id)
        await _hang()
    block = inp.get("block")
    a = await _step(ctx, "s1", inp["x"], block == "s1")
    b = await _step(ctx, "s2", a, block == "s2")
    return str(await _step(ctx, "s3", b, block == "s3"))


@bf.workflow
async def sleeper(ctx: bf.Context, inp: dict[str, Any]) -> str:
    a = await _step(ctx, "s1", inp["x"])
    await ctx.sleep(inp["seconds"])
    return str(await _step(ctx, "s2", a))


@bf.workflow
async def waiter(ctx: bf.Context, inp: dict[str, Any]) -> str:
    a = await _step(ctx, "s1", inp["x"])
    event = await ctx.wait_for_event(inp["topic"])
    return str(await _step(ctx, "s2", f"{a}+{event['note']}"))


@bf.workflow
async def fanout(ctx: bf.Context, inp: dict[str, Any]) -> str:
    """a -> parallel(b0, b1 -> b1x, b2) -> c; ``block`` names the step that hangs."""
    block = inp.get("block")
    a = await _step(ctx, "a", str(inp["i"]), block == "a")

    async def branch(n: int) -> str:
        out = str(await _step(ctx, f"b{n}", a, block == f"b{n}"))
        if n == 1:  # one branch with two steps: positions inside a branch advance too
            out = str(await _step(ctx, "b1x", out, block == "b1x"))
        return out

    parts = await ctx.parallel(*(branch(n) for n in range(3)))
    return str(await _step(ctx, "c", ",".join(parts), block == "c"))


@bf.workflow
async def child_flow(ctx: bf.Context, inp: dict[str, Any]) -> str:
    a = await _step(ctx, "k1", inp["x"], inp.get("block") == "k1")
    return str(await _step(ctx, "k2", a, inp.get("block") == "k2"))


@bf.workflow
async def parent_flow(ctx: bf.Context, inp: dict[str, Any]) -> str:
    a = await _step(ctx, "p1", inp["x"])
    kid = await ctx.child(child_flow, {"x": a, "block": inp.get("child_block")})
    return str(await _step(ctx, "p2", kid))
