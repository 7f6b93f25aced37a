"""Refused calls on the audit trail, without letting a flood fill it.

Every refusal (no token, a bad, revoked or expired one, a role that does not grant the action)
is recorded as ``api.refused`` (webhook refusals: ``trigger.webhook.refused``) while at most
``burst`` were recorded in the last ``window``
seconds; beyond that they are counted, and the next recorded entry (or the one written when the
window closes) says how many were left out (``suppressed``). The trail thus shows that a flood
happened and how large it was, in a bounded number of entries.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import batonflow as bf
from batonflow.store import AuditEntry

log = logging.getLogger("batonflow.server")


class Refusals:
    def __init__(
        self,
        store: bf.Store,
        clock: Callable[[], float],
        *,
        burst: int = 30,
        window: float = 60.0,
        kind: str = "api.refused",
    ) -> None:
        self._store = store
        self._kind = kind
        self._clock = clock
        self._burst = burst
        self._window = window
        self._recent: deque[float] = deque()
        self.suppressed = 0

    async def record(self, data: dict[str, Any], actor: str | None) -> bool:
        """Audit one refusal unless the budget is spent; True if it was written."""
        now = self._clock()
        while self._recent and self._recent[0] <= now - self._window:
            self._recent.popleft()
        if len(self._recent) >= self._burst:
            self.suppressed += 1
            return False
        self._recent.append(now)
        if self.suppressed:
            data = {**data, "suppressed": self.suppressed}
            self.suppressed = 0
        entry = AuditEntry(self._kind, json.dumps(data, separators=(",", ":")), actor=actor)
        try:
            await self._store.append_audit([entry], now)
        except bf.StoreError:  # the refusal stands; the store's trouble is reported elsewhere
            log.warning("could not audit a refused call: the store failed", exc_info=True)
            return False
        return True

    async def flush(self) -> None:
        """Write the count of refusals left out, if any (at shutdown)."""
        if self.suppressed:
            self._recent.clear()
            await self.record({"reason": "refusals left out of the trail"}, None)
