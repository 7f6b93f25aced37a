"""Workflows with data subjects for the console's subjects tests
(``--workflow tests/console/subject_flows.py:enquiry``)."""

from __future__ import annotations

from typing import Any

import batonflow as bf


@bf.step
def draft(enquiry: dict[str, Any]) -> str:
    return f"Dear {enquiry['name']}, about {enquiry['topic']}: we will call you back."


@bf.workflow(subjects=lambda enquiry: [enquiry["from"]])
async def enquiry(ctx: bf.Context, enquiry: dict[str, Any]) -> dict[str, Any]:
    """An enquiry from a person: their reply, then it waits for the call-back note."""
    reply = await ctx.step(draft, enquiry)
    note = await ctx.wait_for_event("callback", timeout=86400)
    return {"reply": reply, "note": note}
