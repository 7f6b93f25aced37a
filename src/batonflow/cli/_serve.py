"""``batonflow serve``: the engine's workers and the HTTP API in one process."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from batonflow.cli import _setup, _worker
from batonflow.cli._io import (
    DEFAULT_DB,
    cli_errors,
    configure_logging,
    ensure_cwd_on_path,
    load_workflow,
    note,
    resolve_db,
)
from batonflow.cli._options import Db

DEFAULT_DOCUMENTS = "workflows"


def serve(
    db: Db = DEFAULT_DB,
    host: Annotated[str, typer.Option("--host", help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", "-p", min=0, max=65535, help="The port (0: any free one).")
    ] = 8080,
    workers: Annotated[
        bool,
        typer.Option(
            "--workers/--no-workers",
            help="Execute runs in this process too (default), or serve the API only: runs"
            " started here are then executed by `batonflow worker` or other `serve` processes.",
        ),
    ] = True,
    workflows: Annotated[
        list[str] | None,
        typer.Option(
            "--workflow",
            "-w",
            metavar="REF",
            help="A Python workflow to offer by name (module:function; repeatable).",
        ),
    ] = None,
    documents: Annotated[
        Path | None,
        typer.Option(
            "--documents",
            metavar="DIR",
            help="A folder of workflow documents to offer (default: ./workflows when it"
            " exists). More versions can be deployed over the API.",
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", "-c", min=1, help="At most this many runs at once."),
    ] = None,
    lease: Annotated[float, typer.Option("--lease", min=0.5, metavar="SECONDS")] = 30.0,
    grace: Annotated[
        float,
        typer.Option(
            "--grace",
            min=0,
            metavar="SECONDS",
            help="On SIGTERM, let runs in flight end or park for this long, then hand the rest"
            " back.",
        ),
    ] = 10.0,
    signing_key: Annotated[
        Path | None,
        typer.Option("--signing-key", metavar="FILE", help="Ed25519 key for `POST /audit/sign`."),
    ] = None,
    allow_processes: Annotated[
        bool, typer.Option("--allow-processes", help="Let documents run local processes.")
    ] = False,
    token_cache: Annotated[
        float,
        typer.Option(
            "--token-cache",
            min=0,
            metavar="SECONDS",
            help="Trust a verified token this long without reading the store again (0: every"
            " call reads it). A revoked token is refused at once regardless.",
        ),
    ] = 2.0,
    ssl_certfile: Annotated[
        Path | None,
        typer.Option("--ssl-certfile", metavar="FILE", help="Serve HTTPS: certificate."),
    ] = None,
    ssl_keyfile: Annotated[
        Path | None, typer.Option("--ssl-keyfile", metavar="FILE", help="Serve HTTPS: its key.")
    ] = None,
) -> None:
    """Run the service: the HTTP API (and, by default, the workers) on one database.

    SQLite by default: `batonflow serve` in an empty folder works. On PostgreSQL
    (`--db postgresql://...`) run as many as you like behind a load balancer. Every call needs
    a bearer token (`batonflow identity create` and `batonflow token create`); only /healthz,
    /readyz and the webhooks /hooks/NAME (signed by their senders) are open. SIGTERM drains:
    no new runs start, runs in flight get --grace seconds, the rest are handed back.
    """
    with cli_errors():
        path = resolve_db(db, must_exist=False)
        ensure_cwd_on_path()
        if logging.getLogger("batonflow").level > logging.WARNING:
            configure_logging(logging.WARNING)
        folder = documents
        if folder is None and Path(DEFAULT_DOCUMENTS).is_dir():
            folder = Path(DEFAULT_DOCUMENTS)
        from batonflow.server import ServeOptions

        engine: dict[str, Any] = {"lease_seconds": lease}
        if concurrency is not None:
            engine["max_concurrent_runs"] = concurrency
        options = ServeOptions(
            db=path, workers=workers, grace=grace, engine=engine,
            workflows=[load_workflow(ref) for ref in workflows or ()], documents=folder,
            allow_processes=allow_processes, signing_key=signing_key, token_cache=token_cache,
        )  # fmt: skip
        tls = {"ssl_certfile": str(ssl_certfile) if ssl_certfile else None,
               "ssl_keyfile": str(ssl_keyfile) if ssl_keyfile else None}  # fmt: skip
        with asyncio.Runner(loop_factory=_fast_loop()) as runner:
            runner.run(_run(options, host, port, tls))
    note("batonflow serve: stopped")


def _fast_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when installed (the ``serve`` extra): it roughly halves the cost of
    each request's I/O; else asyncio's own. uvicorn likewise parses HTTP with httptools when
    it is installed."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _run(options: Any, host: str, port: int, tls: dict[str, Any]) -> None:
    import uvicorn

    from batonflow.server import create_app

    app = create_app(_setup.current(), options)
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="on",
        timeout_graceful_shutdown=max(1, int(options.grace)), **tls,
    )  # fmt: skip
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    # uvicorn has a flag, no event, for this
    while not server.started and not task.done():  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    if server.started:
        bound = server.servers[0].sockets[0].getsockname()
        scheme = "https" if tls["ssl_certfile"] else "http"
        role = "API and workers" if options.workers else "API only (--no-workers)"
        note(
            f"batonflow serve: listening on {scheme}://{bound[0]}:{bound[1]} ({role}) on"
            f" {_worker.where(options.db)}, pid {os.getpid()}; API docs at /api/v1/docs"
        )
        await _hint(app)
    await task


async def _hint(app: Any) -> None:
    from batonflow.governance._identity import has_identities

    if not await has_identities(app.state.service.store):
        note(
            "no identities yet: create an admin and a token to call the API:"
            " `batonflow identity create NAME --role admin` then `batonflow token create NAME`"
        )


class _Server:
    """uvicorn's server, whose exit also ends the open event streams (so shutdown does not
    wait for clients that never hang up), and which exits 0 after draining on SIGTERM (uvicorn
    re-raises the signal once it has shut down)."""

    def __new__(cls, config: Any) -> Any:
        import uvicorn

        class Server(uvicorn.Server):
            def handle_exit(self, sig: int, frame: Any) -> None:
                super().handle_exit(sig, frame)
                if sig == signal.SIGTERM:  # a drained stop is a clean exit (0), not a kill
                    self._captured_signals.remove(sig)
                service = getattr(config.app.state, "service", None)
                if service is not None:
                    asyncio.get_running_loop().call_soon_threadsafe(service.feed.close_streams)

        return Server(config)
