"""Back-off while the store fails, so an engine waits for a full disk or a lost database to
recover instead of claiming and failing the same runs in a hot loop."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from batonflow.errors import LeaseLost

__all__ = ["StoreTrouble"]

log = logging.getLogger("batonflow.engine")


class StoreTrouble:
    """Back-off while the store fails (a full disk, a lost database): claims pause for 0.5 s,
    doubling to 30 s, instead of claiming and failing the same runs in a hot loop. Runs handed
    back stay runnable in the store; the first successful write ends the pause.

    ``failing(error)`` is called when an episode begins (the first failure after success) and
    ``recovered(error)`` when it ends, with the error that began it: the engine tells its
    hooks, and the alerts hook tells people at once, then records it once the store works."""

    FIRST, LONGEST = 0.5, 30.0

    def __init__(
        self,
        failing: Callable[[str], None] | None = None,
        recovered: Callable[[str], None] | None = None,
    ) -> None:
        self._failures = 0
        self._until = 0.0
        self._error = ""
        self._on_failing, self._on_recovered = failing, recovered

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        if isinstance(exc, LeaseLost) or now < self._until:
            return  # already pausing: the other runs of one burst do not lengthen it
        self._failures += 1
        if self._failures == 1:
            self._error = str(exc) or type(exc).__name__
            if self._on_failing is not None:
                self._on_failing(self._error)
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
            if self._on_recovered is not None:
                self._on_recovered(self._error)

    def waiting(self) -> float:
        """Seconds until claims may be tried again (0: now)."""
        return max(self._until - time.monotonic(), 0.0)
