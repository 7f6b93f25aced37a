"""A clock that moves only when told to, so tests about time never sleep."""

from __future__ import annotations

import asyncio
import heapq
import itertools

#: 2026-01-01T00:00:00Z: a fixed, readable starting point.
DEFAULT_START = 1_767_225_600.0


class FakeClock:
    """Deterministic time for tests.

    ``await clock.advance(seconds)`` moves time and wakes every sleeper whose time has come, in
    order, letting each run before moving on. Pair it with ``await engine.settle()`` to let the
    engine finish what became runnable.
    """

    def __init__(self, start: float = DEFAULT_START) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), fut))
        await fut

    @property
    def sleepers(self) -> int:
        """How many sleeps are waiting (cancelled ones excluded)."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def next_deadline(self) -> float | None:
        live = [t for t, _, f in self._sleepers if not f.done()]
        return min(live) if live else None

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking sleepers due on the way, in time order."""
        target = self._now + seconds
        while True:
            due = self.next_deadline()
            if due is None or due > target:
                break
            self._now = max(self._now, due)
            self._wake_due()
            await _settle()
        self._now = target
        await _settle()

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)


async def _settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)
