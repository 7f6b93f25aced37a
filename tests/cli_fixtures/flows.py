"""Workflows the CLI tests run by file reference (tests/cli_fixtures/flows.py:NAME)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import batonflow as bf


@bf.step
def shout(name: str) -> str:
    return f"HELLO {name.upper()}"


@bf.workflow
async def greet(ctx: bf.Context, data: dict[str, Any]) -> dict[str, Any]:
    return {"greeting": await ctx.step(shout, data["name"])}


@bf.workflow
async def approval(ctx: bf.Context, data: dict[str, Any]) -> dict[str, Any]:
    """Waits for an `approve` event sent to the run."""
    greeting = await ctx.step(shout, data["name"])
    decision = await ctx.wait_for_event("approve")
    return {"greeting": greeting, "decision": decision}


@bf.workflow
async def keyed(ctx: bf.Context, data: dict[str, Any]) -> Any:
    """Waits for an `approve` event sent to the correlation key data["key"]."""
    return await ctx.wait_for_event("approve", key=data["key"])


@bf.workflow
async def parent(ctx: bf.Context, data: dict[str, Any]) -> dict[str, Any]:
    """A child run that waits for an event: the whole tree parks."""
    return {"child": await ctx.child(approval, data)}


@bf.step(retry=bf.Retry(max_attempts=2, initial_delay=0.05, jitter=0))
def explode(what: str) -> str:
    raise ValueError(f"cannot handle {what}")


@bf.workflow
async def boom(ctx: bf.Context, what: str) -> str:
    """Fails twice, 50 ms apart (a short backoff `run` waits through), then faults."""
    return await ctx.step(explode, what)


@bf.step(retry=bf.Retry.never())
def need_marker(marker: str) -> str:
    if not Path(marker).exists():
        raise FileNotFoundError(f"marker {marker} is missing")
    return "found"


@bf.workflow
async def fragile(ctx: bf.Context, data: dict[str, Any]) -> str:
    """Faults until the file data["marker"] exists; `resume` retries the failed step."""
    return await ctx.step(need_marker, data["marker"])


@bf.workflow(subjects=lambda data: data["email"])
async def fragile_client(ctx: bf.Context, data: dict[str, Any]) -> str:
    """A client's run (sealed: it names a data subject) that raises its own error from the
    failed step's; `resume` still finds and retries that step."""
    try:
        return await ctx.step(need_marker, data["marker"])
    except FileNotFoundError as error:
        raise LookupError(f"nothing to send {data['email']} yet") from error


@bf.workflow
async def nap(ctx: bf.Context, seconds: float) -> str:
    await ctx.sleep(seconds)
    return "rested"
