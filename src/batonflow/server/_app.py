"""The FastAPI application of ``batonflow serve``.

Routers: the API under :data:`API_PREFIX` (runs, workflows, events, approvals, audit,
subjects, connectors, alerts, identities and tokens, live streams), and the operational
endpoints ``/healthz``, ``/readyz``, ``/metrics`` at the root, and the web console at ``/``
(``server/console``); more routers (``/hooks`` triggers) plug in through
``create_app(routers=...)`` or ``app.include_router`` and reach the :class:`Service` as
``request.app.state.service``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI

import batonflow as bf
from batonflow.configuration import Setup
from batonflow.governance._identity import local_identity
from batonflow.server import (
    _approvals,
    _audit,
    _events,
    _governance,
    _health,
    _identities,
    _live,
    _problems,
    _runs,
    _workflows,
)
from batonflow.server._catalog import Catalog
from batonflow.server._feed import Feed
from batonflow.server._limits import Limits
from batonflow.server._refusals import Refusals
from batonflow.server._service import Service

log = logging.getLogger("batonflow.server")
API_PREFIX = "/api/v1"


@dataclass(frozen=True)
class ServeOptions:
    """How a ``serve`` process runs. ``workers``: execute runs here (else only record them);
    ``engine``: ``Engine`` keyword options (lease, concurrency, queues); ``workflows``: Python
    workflows offered by name; ``documents``: a folder of workflow documents."""

    db: str = "batonflow.db"
    workers: bool = True
    grace: float = 10.0
    engine: dict[str, Any] = field(default_factory=dict)
    workflows: Sequence[bf.Workflow[Any, Any]] = ()
    documents: Path | None = None
    allow_processes: bool = False
    signing_key: Path | None = None
    max_body: int = 2_000_000
    request_timeout: float = 60.0
    feed_interval: float = 0.05


def create_app(
    setup: Setup | None = None,
    options: ServeOptions | None = None,
    *,
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """The application; the store, the engine and the change feed open with its lifespan."""
    setup = setup or Setup.load()
    options = options or ServeOptions()
    app = FastAPI(
        title="batonflow",
        version=bf.__version__,
        summary="Durable AI workflows: start, watch and steer runs over HTTP.",
        lifespan=_lifespan(setup, options),
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.options = options
    app.state.metrics = _health.Metrics()
    _problems.install(app)
    app.add_middleware(Limits, max_body=options.max_body, timeout=options.request_timeout)
    api = APIRouter(prefix=API_PREFIX, responses=_problems.RESPONSES)
    for module in (_runs, _live, _workflows, _events, _approvals, _audit, _governance, _identities):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(_health.router, responses={401: _problems.RESPONSES[401]})
    for router in routers:
        app.include_router(router)
    from batonflow.server import console

    console.install(app)
    return app


def _lifespan(setup: Setup, options: ServeOptions) -> Callable[[FastAPI], Any]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with setup.session(options.db, allow_processes=options.allow_processes) as session:
            engine = None
            if options.workers:
                engine = session.engine(list(options.workflows), **options.engine)
                await engine.open()
            else:
                await session.store.open()
            host = None
            try:
                await _serve(app, setup, session, engine, options)
                if engine is not None:  # triggers start runs: where the workers are
                    host = await _host_triggers(setup, session, engine, app.state.service)
                yield
            finally:
                if host is not None:
                    await host.stop()
                service: Service = app.state.service
                await service.feed.stop()
                await service.refusals.flush()
                if engine is not None:
                    await engine.close(grace=options.grace)
                else:
                    await session.store.close()

    return lifespan


async def _serve(
    app: FastAPI, setup: Setup, session: Any, engine: bf.Engine | None, options: ServeOptions
) -> None:
    catalog = Catalog(
        session.store, session.runtime.workflow, list(options.workflows), options.documents
    )
    for entry in await catalog.entries():  # a broken document stops the start, with its problems
        if entry.document is not None:  # what `run: workflow` tasks may start
            session.runtime.add_document(entry.document)
    feed = Feed(session.store, interval=options.feed_interval)
    clock = engine.clock.now if engine is not None else _now
    service = Service(setup, session, catalog, feed, Refusals(session.store, clock), engine)
    app.state.service = service
    await setup.record_policy(session.store, local_identity().name)
    feed.observe(app.state.metrics.see)
    from batonflow.server import console

    console.attach(service)
    await feed.start()


async def _host_triggers(setup: Setup, session: Any, engine: bf.Engine, service: Service) -> Any:
    """The configured schedules and mailboxes, and the ``schedule`` of the documents folder's
    documents, run beside the workers (each tick and message acted on once across every
    ``serve`` process: the store decides); None when nothing is configured."""
    from batonflow.triggers import TriggerHost

    folder = [e.source for e in service.catalog.folder_documents() if e.source]
    triggers = setup.schedules(session.runtime, folder, session.client)
    return await TriggerHost(engine, triggers).start() if triggers else None


def _now() -> float:
    return time.time()
