"""``batonflow worker``: reading its options into engine settings, and running the engine until
SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import batonflow as bf
from batonflow.configuration import document_deadline

_LIMIT_KEYS = ("concurrency", "per_worker", "rate")


def parse_queue_limit(spec: str) -> tuple[str, bf.Queue]:
    """``llm:concurrency=4,per_worker=2,rate=50/60`` -> ("llm", Queue(4, 2, RateLimit(50, 60))).

    ``rate=N/SECONDS`` (``rate=N`` means per minute); ``per-worker`` may be spelled with a dash.
    """
    name, sep, body = spec.partition(":")
    name = name.strip()
    if not sep or not name or not body.strip():
        raise bf.ConfigError(
            f"--queue-limit {spec!r}: expected NAME:KEY=VALUE[,KEY=VALUE...], for example"
            " llm:concurrency=4,per_worker=2,rate=50/60"
        )
    values: dict[str, Any] = {}
    for item in body.split(","):
        key, eq, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or key not in _LIMIT_KEYS or key in values:
            raise bf.ConfigError(
                f"--queue-limit {spec!r}: {item.strip()!r} is not one of"
                " concurrency=N, per_worker=N, rate=N/SECONDS (each at most once)"
            )
        values[key] = _rate(spec, value) if key == "rate" else _count(spec, value)
    return name, bf.Queue(**values)


def _count(spec: str, text: str) -> int:
    if not re.fullmatch(r"\s*\d+\s*", text):
        raise bf.ConfigError(f"--queue-limit {spec!r}: {text.strip()!r} is not a whole number")
    return int(text)


def _rate(spec: str, text: str) -> bf.RateLimit:
    match = re.fullmatch(r"\s*(\d+)\s*(?:/\s*(\d+(?:\.\d+)?)\s*s?)?\s*", text)
    if match is None:
        raise bf.ConfigError(f"--queue-limit {spec!r}: rate={text.strip()} is not N/SECONDS")
    return bf.RateLimit(int(match[1]), per=float(match[2] or 60))


def served(queues: str | None) -> list[str] | None:
    """``--queues default,llm`` -> ["default", "llm"]; None: every queue."""
    if queues is None:
        return None
    names = [n.strip() for n in queues.split(",") if n.strip()]
    if not names:
        raise bf.ConfigError("--queues: name at least one queue (default: every queue)")
    return names


@dataclass(frozen=True)
class TriggerOptions:
    """Host the configured triggers in a worker: ``documents`` (workflow files) add their
    ``schedule``; ``hosting`` is told which triggers are hosted."""

    documents: tuple[str, ...] = ()
    hosting: Callable[[list[Any]], None] = lambda _triggers: None


def where(db: str) -> str:
    """``db`` for messages: a URL without its password."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", db)


async def work(
    db: str,
    *,
    options: dict[str, Any],
    grace: float,
    ready: Callable[[bf.Engine], None],
    dsl: Any = None,
    triggers: Any = None,
) -> None:
    """Execute runs until SIGINT or SIGTERM, then stop gracefully: claim nothing more, give the
    runs in flight ``grace`` seconds to end or park, then hand the rest back (each records the
    steps it finished; a step cut off in flight runs again on the worker that takes it over).
    With ``[governance.alerts]`` configured, the engine raises alerts as it sees their events,
    and the alert monitor runs beside it as the safety net for what happened while no process
    was running (a run faulted by a killed process, a deadline that passed meanwhile).
    With ``triggers`` (:class:`TriggerOptions`), the configured schedules run beside it."""
    from batonflow.cli import _setup
    from batonflow.governance._anchor import signing

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    setup = _setup.current()
    try:
        async with setup.session(
            db,
            allow_processes=bool(dsl and dsl.allow_processes),
            documents=dsl.documents if dsl else (),
        ) as session:
            engine = session.engine(**options)
            await engine.open()
            from batonflow.governance._identity import local_identity

            await setup.record_policy(session.store, local_identity().name)
            monitor: asyncio.Task[None] | None = None
            host = None
            try:
                if triggers is not None:
                    from batonflow.triggers import TriggerHost
                    from batonflow.triggers._host import deployed_documents

                    deployed = await deployed_documents(session.store)
                    schedules = setup.schedules(session.runtime, triggers.documents,
                                                session.client, deployed=deployed)  # fmt: skip
                    host = await TriggerHost(engine, schedules).start()
                    triggers.hosting(schedules)
                alerts = setup.alerts()
                if alerts is not None:
                    watcher = alerts.monitor(
                        session.store, engine.clock, session.client, deadline_of=document_deadline
                    )
                    monitor = asyncio.create_task(watcher.run(alerts.interval))
                async with signing(setup.audit_heads(), session.store, engine.clock):
                    ready(engine)
                    await stop.wait()
            finally:
                if host is not None:
                    await host.stop()
                if monitor is not None:
                    monitor.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await monitor
                await engine.close(grace=grace)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
