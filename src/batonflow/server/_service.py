"""What the API's routes work with: the configuration's session (sealed store, DSL runtime),
the engine when this process executes runs, and the workflows it offers."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import batonflow as bf
from batonflow.configuration import Session, Setup
from batonflow.server._tokens import TokenCache

log = logging.getLogger("batonflow.server")

if TYPE_CHECKING:
    from batonflow.server._catalog import Catalog
    from batonflow.server._feed import Feed
    from batonflow.server._refusals import Refusals


@dataclass
class Service:
    """One running ``serve`` process. ``engine`` is None with ``--no-workers``: runs started
    here are recorded pending and executed by other processes."""

    setup: Setup
    session: Session
    catalog: Catalog
    feed: Feed
    refusals: Refusals
    engine: bf.Engine | None = None
    webhooks: Any = None  # the hooks this process answers (triggers._webhook.Webhooks)
    host: Any = None  # the TriggerHost, with an engine: it adopts deployed documents
    #: The triggers configured when the process started (described even without workers).
    configured: tuple[Any, ...] = ()
    started_at: float = field(default_factory=time.time)
    tokens: TokenCache = field(default_factory=lambda: TokenCache(time.time))

    @property
    def triggers(self) -> tuple[Any, ...]:
        """The triggers this service describes: those its host runs (deployed documents'
        included), else those configured (a ``--no-workers`` process hosts none)."""
        return tuple(self.host.triggers) if self.host is not None else self.configured

    @property
    def store(self) -> bf.Store:
        return self.session.store

    def now(self) -> float:
        return self.engine.clock.now() if self.engine is not None else time.time()

    async def start(
        self,
        wf: bf.Workflow[Any, Any],
        input: Any,
        *,
        idempotency_key: str | None,
        started_by: str,
        timeout: float | None = None,
    ) -> bf.RunRecord:
        """Start a run of ``wf`` as the engine does (redacted, tagged, idempotent), executed
        here when this process has workers, else recorded pending for the workers."""
        if self.engine is not None:
            handle = await self.engine.start(
                wf, input, idempotency_key=idempotency_key, timeout=timeout,
                started_by=started_by,
            )  # fmt: skip
            self.feed.wake()
            return handle.created or await self.engine.get_run(handle.run_id)
        from batonflow.cli._ops import record_pending

        name = wf.name_for(input)
        stored, subjects = await wf.prepare(input, self.setup.redactor().persist)
        details = await record_pending(
            self.store, wf, name, stored, subjects, started_by,
            idempotency_key=idempotency_key, timeout=timeout,
        )  # fmt: skip
        self.feed.wake()
        return details.run

    async def deployed(self) -> None:
        """A document was deployed: host its schedule or webhook here at once (the other
        processes find it within their refresh); a failure is logged, the deployment stands."""
        if self.host is None:
            return
        try:
            await self.host.refresh()
        except Exception:
            log.exception("hosting the triggers of a deployed document failed")

    def poke(self) -> None:
        """This process changed the store: the engine and the change feed look at once."""
        if self.engine is not None:
            self.engine.poke()
        self.feed.wake()
