"""The FastAPI application of ``batonflow serve``.

Routers: the API under :data:`API_PREFIX` (runs, workflows, events, approvals, audit, triggers,
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
from batonflow.governance._anchor import signing
from batonflow.governance._identity import local_identity
from batonflow.server import (
    _approvals,
    _audit,
    _events,
    _governance,
    _health,
    _hooks,
    _identities,
    _live,
    _problems,
    _runs,
    _triggers,
    _workflows,
)
from batonflow.server._catalog import Catalog
from batonflow.server._feed import Feed
from batonflow.server._limits import Limits
from batonflow.server._refusals import Refusals
from batonflow.server._service import Service
from batonflow.server._tokens import TokenCache

log = logging.getLogger("batonflow.server")
API_PREFIX = "/api/v1"


@dataclass(frozen=True)
class ServeOptions:
    """How a ``serve`` process runs. ``workers``: execute runs here (else only record them);
    ``engine``: ``Engine`` keyword options (lease, concurrency, queues); ``workflows``: Python
    workflows offered by name; ``documents``: a folder of workflow documents;
    ``token_cache``: seconds a verified token is trusted before the store is read again (a
    change of identities or tokens, from any process, forgets them all at once)."""

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
    token_cache: float = 2.0


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
    modules = (_runs, _live, _workflows, _events, _approvals, _audit, _governance, _identities,
               _triggers)  # fmt: skip
    for module in modules:
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(_health.router, responses={401: _problems.RESPONSES[401]})
    app.include_router(_hooks.router)  # signed by the sender, not authorised by a token
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
                clock = engine.clock if engine is not None else bf.SystemClock()
                async with signing(setup.audit_heads(), session.store, clock):
                    yield
            finally:
                if host is not None:
                    await host.stop()
                service: Service = app.state.service
                await service.feed.stop()
                await service.refusals.flush()
                if service.webhooks is not None:
                    await service.webhooks.refusals.flush()
                if engine is not None:
                    await engine.close(grace=options.grace)
                else:
                    await session.store.close()

    return lifespan


async def _serve(
    app: FastAPI, setup: Setup, session: Any, engine: bf.Engine | None, options: ServeOptions
) -> None:
    catalog = Catalog(session.store, session.runtime, list(options.workflows), options.documents)
    for entry in await catalog.entries():  # a broken document stops the start, with its problems
        if entry.document is not None and entry.source != "deployed":  # for `run: workflow`
            session.runtime.add_document(entry.document)  # (the runtime reads deployed ones)
    feed = Feed(session.store, interval=options.feed_interval)
    clock = engine.clock.now if engine is not None else _now
    service = Service(
        setup, session, catalog, feed, Refusals(session.store, clock), engine,
        tokens=TokenCache(clock, ttl=options.token_cache),
    )  # fmt: skip
    service.configured = tuple(await _triggers_of(setup, session, catalog))
    app.state.service = service
    feed.observe(service.tokens.see)
    await setup.record_policy(session.store, local_identity().name)
    feed.observe(app.state.metrics.see)
    app.state.metrics.watch(session.store)
    from batonflow.server import console

    console.attach(service)
    await feed.start()


async def _triggers_of(setup: Setup, session: Any, catalog: Catalog) -> list[Any]:
    """The configured schedules, mailboxes and webhooks, and those of the latest version of
    each document (the folder's and the deployed ones), as a process without workers sees them."""
    latest = {e.name: e for e in await catalog.entries() if e.kind == "document"}
    documents = [e.document for e in latest.values() if e.document is not None]
    return list(setup.schedules(session.runtime, (), session.client, deployed=documents))


async def _host_triggers(setup: Setup, session: Any, engine: bf.Engine, service: Service) -> Any:
    """The configured schedules, mailboxes and webhooks, and the ``schedule`` and webhook of
    the latest version of each document (the documents folder's and those deployed through
    the API: at once in the process that deploys it, within 30 s in the others), run beside
    the workers (each tick, message and ``webhook-id`` acted on once across every ``serve``
    process: the store decides)."""
    from batonflow.triggers import TriggerHost, Webhooks

    async def discover() -> list[Any]:
        return await _triggers_of(setup, session, service.catalog)

    triggers = list(service.configured)
    refusals = Refusals(session.store, engine.clock.now, kind="trigger.webhook.refused")
    service.webhooks = hooks = Webhooks.of(engine, triggers, refusals)
    service.host = TriggerHost(engine, triggers, discover=discover, adopted=hooks.adopt)
    return await service.host.start()


def _now() -> float:
    return time.time()
