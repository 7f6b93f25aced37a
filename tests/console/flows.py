"""Workflows the console tests start (``--workflow tests/console/flows.py:NAME``)."""

from __future__ import annotations

from typing import Any

import batonflow as bf
from batonflow.catalog import approval

LABELS = ["complaint", "question", "praise"]


@bf.step
def triage(email: dict[str, Any]) -> dict[str, Any]:
    """What a ``classify`` step records (label, confidence, the text and the labels), decided
    here by a keyword so the tests need no model."""
    label = "complaint" if "refund" in email["body"].lower() else "question"
    return {"label": label, "confidence": 0.62, "rationale": "mentions a refund",
            "text": email["body"], "labels": LABELS}  # fmt: skip


@bf.step
def acknowledge(email: dict[str, Any]) -> dict[str, Any]:
    return {"reply": f"Dear {email['from_name']}, we are looking into it."}


@bf.workflow(subjects=lambda email: email["from"])
async def complaint(ctx: bf.Context, email: dict[str, Any]) -> dict[str, Any]:
    """A customer's complaint: the complaints team approves the reply before it goes out."""
    await ctx.step(triage, email)
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
