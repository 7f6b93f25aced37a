"""Workflows the server tests start over HTTP (``--workflow tests/server/flows.py:NAME``)."""

from __future__ import annotations

from typing import Any

import batonflow as bf


@bf.step
def shout(name: str) -> str:
    return f"HELLO {name.upper()}"


@bf.workflow
async def greet(ctx: bf.Context, data: dict[str, Any]) -> dict[str, Any]:
    return {"greeting": await ctx.step(shout, data["name"])}


@bf.step(retry=bf.Retry(max_attempts=1))
def explode(reason: str) -> None:
    raise ValueError(reason)


@bf.workflow
async def fragile(ctx: bf.Context, data: dict[str, Any]) -> None:
    await ctx.step(explode, data["reason"])


@bf.workflow
async def waiting(ctx: bf.Context, data: dict[str, Any]) -> Any:
    """Waits for an `approve` event sent to the run."""
    return await ctx.wait_for_event("approve")
