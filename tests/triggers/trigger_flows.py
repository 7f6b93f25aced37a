"""Workflows the trigger tests' configurations name (imported as ``trigger_flows``)."""

from __future__ import annotations

from typing import Any

import batonflow as bf


@bf.workflow
async def report(ctx: bf.Context, input: dict[str, Any]) -> dict[str, Any]:
    return input
