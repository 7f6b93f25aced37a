"""Hosting triggers: every configured trigger as an asyncio task beside an open engine.

``batonflow triggers run`` and ``batonflow worker --triggers`` host them; ``batonflow serve``
hosts them with one call (``async with TriggerHost(engine, triggers): ...``). Any number of
processes may host the same triggers on one PostgreSQL store: the store decides which of them
acts on each tick (see :mod:`._scheduler`). A trigger that fails raises an alert at once
(``trigger.failed``, through :func:`batonflow.governance.raise_alert`) and keeps trying.
With ``discover``, a host also adopts triggers found after its start (``serve``: documents
deployed through the API). Webhooks are hosted like the others (listing, pause) and answered
by ``serve``'s ``/hooks`` route (:mod:`._webhook`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from batonflow.core import Engine, Workflow, load_workflow
from batonflow.errors import ConfigError
from batonflow.store import Store
from batonflow.triggers._schedule import ScheduleSpec
from batonflow.triggers._scheduler import ScheduleTrigger, Target

__all__ = [
    "TriggerHost",
    "check_document",
    "deployed_documents",
    "document_schedule",
    "document_target",
    "document_webhook",
    "load_schedules",
    "statuses",
    "workflow_target",
]

log = logging.getLogger("batonflow.triggers")


class Trigger(Protocol):
    """What a host runs: a schedule or a mailbox."""

    name: str
    kind: str
    target: Target

    async def run(
        self, engine: Engine, on_error: Callable[[str, str], Awaitable[None]]
    ) -> None: ...

    async def check(self, engine: Engine) -> list[dict[str, Any]]: ...

    async def status(self, store: Store, now: float) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class TriggerHost:
    """Runs ``triggers`` on ``engine`` (open it first) until :meth:`stop`."""

    def __init__(
        self,
        engine: Engine,
        triggers: Sequence[Trigger],
        *,
        discover: Callable[[], Awaitable[Sequence[Trigger]]] | None = None,
        refresh: float = 30.0,
        adopted: Callable[[Trigger], None] | None = None,
    ) -> None:
        """``discover`` (optional) gives the triggers as they are now (documents deployed
        since the start): every ``refresh`` seconds, and at :meth:`refresh`, those with a new
        name are started too (and passed to ``adopted``)."""
        names = [t.name for t in triggers]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(f"two triggers are named {', '.join(map(repr, twice))}")
        self.engine = engine
        self.triggers = tuple(triggers)
        self._discover, self._refresh, self._adopted = discover, refresh, adopted
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False

    async def start(self) -> TriggerHost:
        if self._started:
            return self
        self._started = True
        for trigger in self.triggers:
            self._launch(trigger)
        if self._discover is not None:
            self._tasks.append(asyncio.create_task(self._watch(), name="trigger:discover"))
        log.info("hosting %d trigger(s)", len(self.triggers))
        return self

    def _launch(self, trigger: Trigger) -> None:
        task = asyncio.create_task(
            trigger.run(self.engine, self._reporter(trigger)), name=f"trigger:{trigger.name}"
        )
        self._tasks.append(task)

    async def refresh(self) -> list[Trigger]:
        """Start the discovered triggers not hosted yet (an event trigger subscribes before
        this returns, so the events published next are kept for it); returns them."""
        if self._discover is None:
            return []
        known = {t.name for t in self.triggers}
        new = [t for t in await self._discover() if t.name not in known]
        for trigger in new:
            subscribe = getattr(trigger, "subscribe", None)
            if subscribe is not None:
                await subscribe(self.engine.store, self.engine.clock.now())
            self.triggers += (trigger,)
            if self._adopted is not None:
                self._adopted(trigger)
            if self._started:
                self._launch(trigger)
            log.info("hosting trigger %s (%s), found since the start", trigger.name, trigger.kind)
        return new

    async def _watch(self) -> None:
        while True:
            await self.engine.clock.sleep(self._refresh)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:  # a broken deployment: the triggers already hosted go on
                log.exception("looking for new triggers failed; trying again in %gs",
                              self._refresh)  # fmt: skip

    async def stop(self) -> None:
        """Cancel every trigger task and wait for them; a tick half-acted-on is finished by
        the next pass of whichever process hosts the trigger (its decision is recorded)."""
        tasks, self._tasks = self._tasks, []
        self._started = False
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for trigger in self.triggers:
            await trigger.close()

    async def close(self) -> None:
        """Release what :meth:`check` left open (a mailbox's connection)."""
        for trigger in self.triggers:
            await trigger.close()

    async def __aenter__(self) -> TriggerHost:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def check(self) -> list[dict[str, Any]]:
        """One pass of every trigger at the clock's time (what the tasks do in a loop): for
        tests on a fake clock, and for a one-off ``batonflow triggers run --once``."""
        done: list[dict[str, Any]] = []
        for trigger in self.triggers:
            try:
                done += await trigger.check(self.engine)
            except Exception as exc:
                await self._reporter(trigger)(type(exc).__name__, str(exc))
                raise
        return done

    async def status(self) -> list[dict[str, Any]]:
        return await statuses(self.engine.store, self.triggers, self.engine.clock.now())

    def _reporter(self, trigger: Trigger) -> Callable[[str, str], Awaitable[None]]:
        async def report(error: str, message: str) -> None:
            from batonflow.governance import raise_alert

            hour = int(self.engine.clock.now() // 3600)
            try:
                await raise_alert(
                    self.engine,
                    kind="trigger.failed",
                    summary=f"{trigger.kind} trigger {trigger.name!r} failed: {message}"[:500],
                    key=f"trigger.failed:{trigger.kind}:{trigger.name}:{error}:{hour}",
                    workflow=trigger.target.workflow,
                    details={"trigger": trigger.name, "error": error, "message": message[:2000]},
                )
            except Exception:  # the store or every channel is down: the log still says it
                log.exception("trigger %s: could not raise its alert", trigger.name)

        return report


async def statuses(
    store: Store, triggers: Sequence[Trigger], now: float | None = None
) -> list[dict[str, Any]]:
    now = time.time() if now is None else now
    return [await trigger.status(store, now) for trigger in triggers]


# -- targets --------------------------------------------------------------------------------------
def workflow_target(wf: Workflow[Any, Any]) -> Target:
    """A Python workflow (``@batonflow.workflow``) as what a trigger starts."""

    async def start(engine: Engine, input: Any, run_id: str, key: str) -> str:
        handle = await engine.start(wf, input, idempotency_key=key, run_id=run_id,
                                    started_by="system:triggers")  # fmt: skip
        return handle.run_id

    return Target(wf.name, start)


def document_target(runtime: Any, document: Mapping[str, Any]) -> Target:
    """A workflow document (its validated plain data) run by ``runtime`` (a DslRuntime)."""
    header = document.get("document") or {}
    name = f"{header.get('namespace', 'default')}/{header.get('name', '?')}"

    async def start(engine: Engine, input: Any, run_id: str, key: str) -> str:
        handle = await runtime.start(engine, document, input, idempotency_key=key,
                                     run_id=run_id, started_by="system:triggers")  # fmt: skip
        return str(handle.run_id)

    return Target(name, start, (document.get("input") or {}).get("schema"))


# -- configuration --------------------------------------------------------------------------------
def load_schedules(
    data: Mapping[str, Any],
    source: str,
    *,
    runtime: Any = None,
    documents: Sequence[Mapping[str, Any]] = (),
    poll: float = 5.0,
    client: Any = None,
    egress: Any = None,
) -> list[Any]:
    """The triggers of a configuration (``data`` as read from ``source``): mailboxes
    (``[triggers.mailboxes.NAME]``; OAuth2 tokens fetched through ``client``, the
    egress-controlled one), schedules (``[triggers.schedules.NAME]``), and the ``schedule`` of
    workflow ``documents`` (run by ``runtime``; options from ``metadata.batonflow.schedule``).
    With ``egress`` (an EgressPolicy), a mailbox's server must be on its global allow-list."""
    found: list[Any] = []
    base = Path(source).parent if Path(source).is_file() else Path()
    table = data.get("triggers", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [triggers]: expected a table")
    unknown = sorted(set(table) - {"schedules", "documents", "mailboxes", "webhooks"})
    if unknown:
        raise ConfigError(f"{source}: [triggers]: unknown key(s) {', '.join(unknown)}")
    schedules = table.get("schedules", {})
    if not isinstance(schedules, dict):
        raise ConfigError(f"{source}: [triggers.schedules]: expected a table of schedules")
    for name, entry in schedules.items():
        where = f"{source}: [triggers.schedules.{name}]"
        spec = ScheduleSpec.parse(entry, where)
        target = _toml_target(entry, where, runtime, base)
        found.append(ScheduleTrigger(name, spec, target, input=_input(entry, where), poll=poll))
    mailboxes = table.get("mailboxes", {})
    if not isinstance(mailboxes, dict):
        raise ConfigError(f"{source}: [triggers.mailboxes]: expected a table of mailboxes")
    for name, entry in mailboxes.items():
        from batonflow.triggers._mailbox import MailboxTrigger, parse_mailbox

        where = f"{source}: [triggers.mailboxes.{name}]"
        settings = parse_mailbox(entry, where)
        if egress is not None:
            check_egress(egress, settings.host, settings.port, where)
        settings.auth.client = client
        found.append(MailboxTrigger(name, settings, _toml_target(entry, where, runtime, base)))
    webhooks = table.get("webhooks", {})
    if not isinstance(webhooks, dict):
        raise ConfigError(f"{source}: [triggers.webhooks]: expected a table of webhooks")
    for name, entry in webhooks.items():
        from batonflow.triggers._webhook import WebhookTrigger, parse_webhook, publishing_target

        where = f"{source}: [triggers.webhooks.{name}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a table")
        hook = parse_webhook(entry, where)
        if hook.publish and ("workflow" in entry or "document" in entry):
            raise ConfigError(f"{where}: a hook with publish = true starts no workflow itself")
        target = publishing_target() if hook.publish else _toml_target(entry, where, runtime, base)
        found.append(WebhookTrigger(name, hook, target))
    for document in documents:
        trigger = document_schedule(document, runtime, poll=poll)
        if trigger is not None:
            found.append(trigger)
        hook = document_webhook(document, runtime)
        if hook is not None:
            found.append(hook)
    return found


#: Where the API keeps deployed documents (``server._catalog``), one record per version.
DEPLOYED_RECORD = "workflow-document"


async def deployed_documents(store: Store) -> list[dict[str, Any]]:
    """The latest version of each document deployed through the API (its triggers are hosted
    by ``serve``, ``worker --triggers`` and ``triggers run``, and listed by ``triggers
    list``)."""
    import json

    from batonflow.dsl._runtime import _version_key

    latest: dict[str, tuple[Any, dict[str, Any]]] = {}
    for _, text in await store.list_records(DEPLOYED_RECORD):
        document = json.loads(text)
        header = document.get("document") or {}
        name = f"{header.get('namespace', 'default')}/{header.get('name')}"
        version = _version_key(str(header.get("version", "")))
        if name not in latest or version > latest[name][0]:
            latest[name] = (version, document)
    return [document for _, document in latest.values()]


def check_document(document: Mapping[str, Any]) -> None:
    """ConfigError when ``document``'s schedule or webhook cannot be acted upon (before it is
    deployed: a deployment that no process could host is refused)."""

    class _Checking:
        def add_document(self, document: Mapping[str, Any]) -> None:
            return None

    document_schedule(document, _Checking())
    document_webhook(document, _Checking())


def document_webhook(document: Mapping[str, Any], runtime: Any) -> Any:
    """The webhook of a document's ``metadata.batonflow.webhook`` (``name``, default the
    document's name; the settings of ``[triggers.webhooks.NAME]``); None without one."""
    from batonflow.triggers._webhook import WebhookTrigger, parse_webhook

    meta = ((document.get("metadata") or {}).get("batonflow") or {}).get("webhook")
    if meta is None:
        return None
    header = document.get("document") or {}
    where = f"workflow {header.get('namespace', 'default')}/{header.get('name', '?')}:"
    where += " metadata.batonflow.webhook"
    if not isinstance(meta, dict):
        raise ConfigError(f"{where}: expected a mapping")
    if "workflow" in meta or "document" in meta:
        raise ConfigError(f"{where}: the hook starts this document; remove workflow/document")
    name = meta.get("name", header.get("name"))
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}.name: expected a non-empty string")
    settings = parse_webhook(meta, where)
    if settings.publish:
        raise ConfigError(f"{where}.publish: a document's hook starts the document")
    runtime.add_document(dict(document))
    return WebhookTrigger(name, settings, document_target(runtime, document))


def check_egress(policy: Any, host: str, port: int, where: str) -> None:
    """A mailbox server is reached outside the HTTP client, so its host is checked against
    the egress allow-list here, once, when the configuration is read: it must be listed (a
    private or loopback address by an exact address or network entry, as for HTTP)."""
    import ipaddress

    from batonflow.governance._egress import restricted

    try:
        address: Any = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    patterns = policy.patterns(None)
    name = host.lower().rstrip(".")
    allowed = any(p.names(name, port, address) for p in patterns)
    if allowed and address is not None and policy.block_private and restricted(address):
        allowed = any(p.covers(address, port) for p in patterns)
    if not allowed:
        raise ConfigError(
            f"{where}: the mailbox server {host}:{port} is not allowed by {policy.source};"
            f" add {host!r} there"
        )


def _toml_target(entry: Mapping[str, Any], where: str, runtime: Any, base: Path) -> Target:
    if ("workflow" in entry) == ("document" in entry):
        raise ConfigError(
            f"{where}: name what to start with exactly one of workflow = 'module:function'"
            " or document = 'path/to/workflow.yaml'"
        )
    if "workflow" in entry:
        return workflow_target(load_workflow(str(entry["workflow"])))
    if runtime is None:
        raise ConfigError(f"{where}: a document schedule needs the DSL runtime")
    from batonflow.dsl import load_document

    document = load_document(str(base / str(entry["document"]))).raw
    runtime.add_document(document)
    return document_target(runtime, document)


def _input(entry: Mapping[str, Any], where: str) -> dict[str, Any] | None:
    value = entry.get("input")
    if value is not None and not isinstance(value, dict):
        raise ConfigError(f"{where}.input: expected a table (the run's input)")
    return value


def document_schedule(document: Mapping[str, Any], runtime: Any, *, poll: float = 5.0) -> Any:
    """The trigger of a document's ``schedule``: ``every``, ``cron``, ``after`` (a
    ScheduleTrigger, with the options of ``metadata.batonflow.schedule``: ``zone``,
    ``overlap``, ``catchup_window``, ``offset``, ``input``) or ``on`` (an EventTrigger: a run
    per matching event); None when it has no schedule."""
    schedule = document.get("schedule")
    if not schedule:
        return None
    header = document.get("document") or {}
    name = f"{header.get('namespace', 'default')}/{header.get('name', '?')}"
    where = f"workflow {name}: schedule"
    if "on" in schedule:
        from batonflow.triggers._on_events import EventTrigger, event_filters

        filters = event_filters(schedule["on"], where)
        runtime.add_document(dict(document))
        return EventTrigger(name, filters, document_target(runtime, document), poll=poll)
    meta = ((document.get("metadata") or {}).get("batonflow") or {}).get("schedule") or {}
    if not isinstance(meta, dict):
        raise ConfigError(f"workflow {name}: metadata.batonflow.schedule: expected a mapping")
    extra = sorted(set(meta) & {"cron", "every", "after"})
    if extra:
        raise ConfigError(
            f"workflow {name}: metadata.batonflow.schedule: {', '.join(extra)} belong in the"
            " document's schedule, not in its metadata"
        )
    spec = ScheduleSpec.parse({**dict(schedule), **meta}, where)
    runtime.add_document(dict(document))
    return ScheduleTrigger(
        name, spec, document_target(runtime, document), input=_input(meta, where), poll=poll
    )
