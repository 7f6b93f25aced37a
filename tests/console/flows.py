"""Workflows the console tests start (``--workflow tests/console/flows.py:NAME``)."""

from __future__ import annotations

from typing import Any

import batonflow as bf
from batonflow.catalog import approval


@bf.step
def acknowledge(email: dict[str, Any]) -> dict[str, Any]:
    return {"reply": f"Dear {email['from_name']}, we are looking into it."}


@bf.workflow
async def complaint(ctx: bf.Context, email: dict[str, Any]) -> dict[str, Any]:
    """A customer's complaint: the complaints team approves the reply before it goes out."""
    draft = await ctx.step(acknowledge, email)
    verdict = await approval(
        ctx,
        title="Reply to {from_name}: {subject}",
        summary="{body}",
        data=email,
        approvers={"groups": ["complaints"]},
        expires_in="P2D",
    )
    return {"outcome": verdict["outcome"], "reply": draft["reply"]}
