"""Workflows the PostgreSQL worker tests run in ``batonflow worker`` processes (loaded by path).

Every step execution appends JSON lines to the log named by ``BF_EFFECTS`` (O_APPEND: a line
written before a SIGKILL survives it, since the kernel keeps it): ``begin`` when the step
function starts, then ``end`` when it returns or ``abort`` when it is cancelled, each with the
process id, the wall-clock time and a token unique to this execution. The step returns its token,
so the journal shows which execution was recorded.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from typing import Any

import batonflow as bf


def _log(event: str, token: str, **extra: Any) -> None:
    info = bf.current_step()
    line = {
        "pid": os.getpid(),
        "ev": event,
        "run": info.run_id,
        "step": info.step_id,
        "name": info.name,
        "token": token,
        "t": time.time(),
        **extra,
    }
    fd = os.open(os.environ["BF_EFFECTS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


async def effect(tag: str, value: Any, seconds: float = 0.0, hold: str | None = None) -> str:
    """A step with a visible side effect: logs begin/end, takes ``seconds``, and (with ``hold``)
    waits until that file exists, so a test can keep it in flight."""
    token = uuid.uuid4().hex[:12]
    _log("begin", token, tag=tag)
    try:
        if seconds:
            await asyncio.sleep(seconds)
        while hold is not None and not os.path.exists(hold):  # noqa: ASYNC110, ASYNC240
            await asyncio.sleep(0.02)
    except asyncio.CancelledError:
        _log("abort", token, tag=tag)
        raise
    _log("end", token, tag=tag)
    return f"{tag}:{token}"


def _step(ctx: bf.Context, tag: str, *args: Any) -> Any:
    return ctx.step(bf.step(effect, name=tag, retry=bf.Retry.never()), tag, *args)


@bf.workflow
async def chain(ctx: bf.Context, inp: dict[str, Any]) -> list[str]:
    """s1 -> durable sleep -> s2 -> (every ``event`` run: wait for its event) -> s3."""
    work = float(inp.get("work", 0.0))
    a = await _step(ctx, "s1", inp["i"], work)
    await ctx.sleep(float(inp["nap"]))
    b = await _step(ctx, "s2", a, work)
    got = None
    if inp.get("event"):
        got = await ctx.wait_for_event("go", key=f"k{inp['i']}")
    c = await _step(ctx, "s3", [b, got], work)
    return [a, b, c]


@bf.workflow
async def held(ctx: bf.Context, inp: dict[str, Any]) -> list[str]:
    """s1 -> s2 (held in flight until the file ``hold`` exists, taking ``seconds``) -> s3."""
    a = await _step(ctx, "s1", inp["i"])
    b = await _step(ctx, "s2", a, float(inp.get("seconds", 0.0)), inp.get("hold"))
    c = await _step(ctx, "s3", b)
    return [a, b, c]
