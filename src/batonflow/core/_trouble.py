"""Back-off while the store fails, so an engine waits for a full disk or a lost database to
recover instead of claiming and failing the same runs in a hot loop."""

from __future__ import annotations

import logging
import time

from batonflow.errors import LeaseLost

__all__ = ["StoreTrouble"]

log = logging.getLogger("batonflow.engine")


class StoreTrouble:
    """Back-off while the store fails (a full disk, a lost database): claims pause for 0.5 s,
    doubling to 30 s, instead of claiming and failing the same runs in a hot loop. Runs handed
    back stay runnable in the store; the first successful write ends the pause."""

    FIRST, LONGEST = 0.5, 30.0

    def __init__(self) -> None:
        self._failures = 0
        self._until = 0.0

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        if isinstance(exc, LeaseLost) or now < self._until:
            return  # already pausing: the other runs of one burst do not lengthen it
        self._failures += 1
        pause = min(self.FIRST * 2 ** (self._failures - 1), self.LONGEST)
        log.error(
            "the store is failing (%s); runs wait and claims retry in %.1f s;"
            " nothing recorded is lost (free disk space or restore the database)",
            exc,
            pause,
        )
        self._until = now + pause

    def ok(self) -> None:
        if self._failures:
            log.warning("the store works again; runs continue")
        self._failures = 0
        self._until = 0.0

    def waiting(self) -> float:
        """Seconds until claims may be tried again (0: now)."""
        return max(self._until - time.monotonic(), 0.0)
