"""Leases: how an engine keeps the runs it executes, and lets go of them in time.

A claimed run is held by a lease (``lease_seconds``) that the heartbeat renews every third of a
lease. Another engine may take a run over once its lease has expired, so an engine that cannot
renew (the database is unreachable, the process was stalled) must stop executing the run
*before* that can happen: otherwise two engines would execute one run at the same time.

So each activation has a *fence*: the real (monotonic) time at which the engine stops it unless a
renewal has moved it on, a sixth of a lease before the lease itself expires, counted from when the
lease was *requested* (the store's clock could only have granted it later). Fenced runs are
handed back as soon as the store answers again; if another engine took them meanwhile, that
hand-back changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from batonflow.errors import StoreError

if TYPE_CHECKING:
    from batonflow.core._engine import Engine

log = logging.getLogger("batonflow.engine")

#: The fence falls this fraction of a lease before the lease expires.
FENCE_MARGIN = 1 / 6


def fence_at(requested_at: float, lease_seconds: float) -> float:
    """When to stop a run whose lease of ``lease_seconds`` was requested at ``requested_at``."""
    return requested_at + lease_seconds * (1 - FENCE_MARGIN)


async def heartbeat(engine: Engine) -> None:
    """Renew the engine's leases every third of a lease while it executes runs."""
    while True:
        if not engine._active:
            engine._busy.clear()
            await engine._busy.wait()
        await engine.clock.sleep(engine.lease_seconds / 3)
        await renew_or_fence(engine)


async def renew_or_fence(engine: Engine) -> None:
    """One renewal. While the store does not answer, stop each run whose fence has come."""
    renewal = asyncio.ensure_future(engine._renew())
    try:
        while True:
            fences = [act.fence_at for act in engine._active.values() if act.fence_at]
            wait = max(min(fences) - time.monotonic(), 0.0) if fences else None
            done, _ = await asyncio.wait({renewal}, timeout=wait)
            if done:
                break
            now = time.monotonic()
            for act in list(engine._active.values()):
                if act.fence_at and act.fence_at <= now and act.stop("fenced"):
                    engine._fenced.add(act.run.id)
                    log.warning(
                        "run %s: lease not renewed in time (store unreachable?); stopped it so"
                        " that another worker may take it over",
                        act.run.id,
                    )
    finally:
        if not renewal.done():
            renewal.cancel()
    try:
        renewal.result()
    except StoreError as exc:
        log.error("cannot renew leases: %s", exc)
        return
    await hand_back_fenced(engine)


async def hand_back_fenced(engine: Engine) -> None:
    """Release the runs stopped by their fence, now that the store answers."""
    while engine._fenced:
        run_id = engine._fenced.pop()
        if run_id in engine._active:
            continue  # claimed again already
        try:
            await engine.store.release_run(run_id, engine.owner, engine.clock.now())
        except StoreError as exc:
            engine._fenced.add(run_id)
            log.error("run %s: cannot hand back after fencing: %s", run_id, exc)
            return
    engine._poke()
