"""E-mail in: each message in a mailbox starts exactly one run.

IMAP over TLS (or STARTTLS; plain only on loopback), with IDLE when the server offers it and
polling otherwise; password or OAuth2 (XOAUTH2, an access token from the configured client
credentials, fetched through the egress-controlled client and refreshed before it expires).
The IMAP library (``imapclient``) is synchronous: each mailbox has a thread of its own.

Exactly once, for every message, across restarts and processes:

1. The message's key is ``<mailbox>:<UIDVALIDITY>:<UID>``. A record ``kind="trigger.mail"``
   with that key means it was handled: the next pass only marks it (moves or flags it).
2. Its Message-ID is claimed (``kind="trigger.mail.id"``, insert-if-absent): a second message
   with the same Message-ID (a copy, a resend by a client, the same message under a new
   UIDVALIDITY) is recorded as a duplicate and starts nothing.
3. The run's id is derived from the Message-ID (or, without one, from the message key), so a
   process that dies after starting the run and before recording or marking the message starts
   nothing new when the message is seen again: the start finds the run.
4. Only after the run is durably recorded is the message moved or flagged.

A message that cannot become a run (empty, oversized, no headers) is recorded as refused,
raises an alert, and is moved to the refused folder (or flagged). A reply (``In-Reply-To``) is
delivered as an event (topic ``reply_topic``, key: the Message-ID it answers) when ``replies =
"event"``; a run waiting with ``ctx.wait_for_event(topic, key=<message id>)`` receives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import uuid
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from batonflow import _serde
from batonflow.core import Engine
from batonflow.errors import ConfigError
from batonflow.store import AuditEntry
from batonflow.triggers._mail_auth import MailAuth
from batonflow.triggers._mail_parse import MailRefused, message_input
from batonflow.triggers._scheduler import PAUSED_RECORD, Target, run_id_for

__all__ = ["MAIL_ID_RECORD", "MAIL_RECORD", "MailboxSettings", "MailboxTrigger"]

log = logging.getLogger("batonflow.triggers")

MAIL_RECORD = "trigger.mail"
MAIL_ID_RECORD = "trigger.mail.id"
MAIL_STATE = "trigger.mailbox"
LEASE_RECORD = "trigger.mailbox.lease"
ACTOR = "system:triggers"
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
T = TypeVar("T")


@dataclass(frozen=True)
class MailboxSettings:
    """Where the mail is and what to do with it once its run is recorded: ``after = "move"``
    (to ``move_to``) or ``"flag"`` (the keyword ``flag``); refused messages go to
    ``refused_to`` (or get the keyword ``$BatonflowRefused``)."""

    host: str
    username: str
    auth: MailAuth
    port: int = 993
    tls: str = "tls"
    folder: str = "INBOX"
    after: str = "move"
    move_to: str = "Processed"
    flag: str = "$Batonflow"
    refused_to: str | None = "Refused"
    idle: bool = True
    poll: float = 60.0
    batch: int = 50
    replies: str = "run"
    reply_topic: str = "email.reply"
    timeout: float = 30.0
    lease: float = 30.0
    transform: str | None = None

    def __post_init__(self) -> None:
        if self.tls not in ("tls", "starttls", "none"):
            raise ConfigError(f"mailbox tls {self.tls!r}: expected tls, starttls or none")
        if self.tls == "none" and self.host not in LOOPBACK:
            raise ConfigError(
                f"mailbox tls = 'none' for {self.host}: a password would cross the network in"
                " clear; plain IMAP is allowed on loopback only"
            )
        if self.after not in ("move", "flag"):
            raise ConfigError(f"mailbox after {self.after!r}: expected move or flag")
        if self.replies not in ("run", "event"):
            raise ConfigError(f"mailbox replies {self.replies!r}: expected run or event")
        if self.transform is not None:
            from batonflow.dsl._expr import check

            problem = check(self.transform)
            if problem is not None:
                raise ConfigError(f"mailbox transform {self.transform!r}: {problem.detail}")
        if self.poll <= 0 or self.batch < 1 or self.lease <= 0:
            raise ConfigError("mailbox poll, batch and lease: expected positive values")

    @property
    def mailbox(self) -> str:
        return f"{self.username}@{self.host}:{self.port}/{self.folder}"


class MailboxTrigger:
    """Starts ``target`` once per message of the mailbox ``settings`` describe (the module)."""

    kind = "mailbox"

    def __init__(self, name: str, settings: MailboxSettings, target: Target) -> None:
        self.name, self.settings, self.target = name, settings, target
        self._client: Any = None
        self._held: set[int] = set()
        self._saved, self._backlog = float("-inf"), -1
        self._owner = uuid.uuid4().hex
        self._threads = ThreadPoolExecutor(1, thread_name_prefix=f"imap-{name}")

    # -- the loop -------------------------------------------------------------------------------
    async def run(self, engine: Engine, on_error: Callable[[str, str], Awaitable[None]]) -> None:
        """Handle what is there, then wait (IDLE, or ``poll``), until cancelled; a failure
        (server unreachable, credentials refused) is reported and retried after ``poll``."""
        try:
            while True:
                try:
                    await self.check(engine)
                    await self._wait(engine)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("mailbox %s: %s: %s", self.name, type(exc).__name__, exc)
                    await self._record_error(engine, exc)
                    await on_error(type(exc).__name__, _describe(exc))
                    await self._disconnect()
                    await engine.clock.sleep(min(self.settings.poll, 30.0))
        finally:
            await self.close()

    async def close(self) -> None:
        """Log out; the trigger connects again when next used."""
        await self._disconnect()

    async def _wait(self, engine: Engine) -> None:
        now = engine.clock.now()
        if self._slot_at(now) not in self._held:  # another process holds the mailbox
            await engine.clock.sleep(min(self.settings.poll, self._slot_end(now) - now))
            return
        client = await self._connected(engine)
        if self.settings.idle and b"IDLE" in await self._call(client.capabilities):
            await self._call(client.idle)
            try:
                await self._call(client.idle_check, min(self.settings.poll, 300.0))
            finally:
                await self._call(client.idle_done)
        else:
            await engine.clock.sleep(self.settings.poll)

    # -- one pass -------------------------------------------------------------------------------
    async def check(self, engine: Engine) -> list[dict[str, Any]]:
        """Handle every message in the folder now (if this process holds the mailbox's lease);
        returns what was done with each."""
        if await engine.store.get_record(PAUSED_RECORD, self.name) is not None:
            return []  # `batonflow triggers pause`: the messages wait in the mailbox
        if not await self._leased(engine):
            return []
        client = await self._connected(engine)
        status = await self._call(client.select_folder, self.settings.folder)
        validity = int(status[b"UIDVALIDITY"])
        criteria: list[Any] = ["ALL"]
        if self.settings.after == "flag":
            criteria = ["UNKEYWORD", self.settings.flag, "UNKEYWORD", "$BatonflowRefused"]
        uids = sorted(await self._call(client.search, criteria))
        done: list[dict[str, Any]] = []
        await self._success(engine, 0, backlog=len(uids))
        for start in range(0, len(uids), self.settings.batch):
            chunk = uids[start : start + self.settings.batch]
            fetched = await self._call(client.fetch, chunk, ["BODY.PEEK[]"])
            for uid in chunk:
                if not await self._leased(engine):
                    await self._success(engine, len(done), backlog=len(uids) - len(done))
                    return done
                raw = fetched.get(uid, {}).get(b"BODY[]")
                if raw is None:  # expunged since the search: nothing to do with it
                    continue
                done.append(await self._handle(engine, client, validity, uid, raw))
        await self._success(engine, len(done), backlog=0)
        return done

    # -- one process at a time per mailbox --------------------------------------------------------
    def _slot_at(self, now: float) -> int:
        return int(now // self.settings.lease)

    def _slot_end(self, now: float) -> float:
        return (self._slot_at(now) + 1) * self.settings.lease

    async def _leased(self, engine: Engine) -> bool:
        """Whether this process may start on a message now. Time is cut in ``lease`` slots;
        each slot's record (insert-if-absent) names the one process holding it. In the second
        half of its slot, the holder goes on only if it holds the next slot too (it claims it
        early), so a message it is handling is done before anyone else's slot begins: two
        processes never move the same message (the runs would be once anyway)."""
        now = engine.clock.now()
        slot = self._slot_at(now)
        if not await self._hold(engine, slot):
            return False
        if now - slot * self.settings.lease < self.settings.lease / 2:
            return True
        return await self._hold(engine, slot + 1)

    async def _hold(self, engine: Engine, slot: int) -> bool:
        if slot in self._held:
            return True
        store, now = engine.store, engine.clock.now()
        key = f"{self.settings.mailbox}#{slot}"
        held = await store.add_record(LEASE_RECORD, key, json.dumps({"owner": self._owner}), now)
        if not held:
            stored = json.loads(await store.get_record(LEASE_RECORD, key) or "{}")
            held = stored.get("owner") == self._owner
        if held:
            self._held = {s for s in self._held if s >= slot - 1} | {slot}
            old = f"{self.settings.mailbox}#{slot - 3}"  # forget old slots
            await store.put_record(LEASE_RECORD, old, None, now)
        return held

    async def _handle(
        self, engine: Engine, client: Any, validity: int, uid: int, raw: bytes
    ) -> dict[str, Any]:
        store, now = engine.store, engine.clock.now()
        key = f"{self.settings.mailbox}:{validity}:{uid}"
        stored = await store.get_record(MAIL_RECORD, key)
        if stored is not None:  # handled before; the mark did not happen (a crash)
            outcome: dict[str, Any] = json.loads(stored)
        else:
            outcome = await self._outcome(engine, key, raw)
            data_json = _serde.dumps_lenient(outcome)
            kind = "trigger.mail." + outcome["state"]
            entry = AuditEntry(kind, data_json, run_id=outcome.get("run_id"), actor=ACTOR)
            await store.add_record(MAIL_RECORD, key, data_json, now, audit=[entry])
        await self._mark(client, uid, refused=outcome["state"] == "refused")
        return outcome

    async def _outcome(self, engine: Engine, key: str, raw: bytes) -> dict[str, Any]:
        base: dict[str, Any] = {"trigger": self.name, "key": key}
        try:
            input = message_input(raw, self.name)
            message_id, in_reply_to = input["message_id"], input["in_reply_to"]
            if self.settings.transform is not None:
                input = await _transformed(self.settings.transform, input)
        except MailRefused as refused:
            await self._refused(engine, key, refused.reason)
            return {**base, "state": "refused", "reason": refused.reason}
        run_key = f"mail:{self.settings.mailbox}:{message_id}" if message_id else f"mail:{key}"
        base["message_id"] = message_id
        if message_id:
            claim = _serde.dumps_lenient({"key": key})
            now = engine.clock.now()
            if not await engine.store.add_record(MAIL_ID_RECORD, run_key, claim, now):
                first = json.loads(await engine.store.get_record(MAIL_ID_RECORD, run_key) or "{}")
                if first.get("key") != key:
                    return {**base, "state": "duplicate", "first": first.get("key")}
        if in_reply_to and self.settings.replies == "event":
            await engine.send_event(self.settings.reply_topic, input, key=in_reply_to)
            return {**base, "state": "reply", "in_reply_to": in_reply_to}
        run_id = await self.target.start(engine, input, run_id_for(run_key), run_key)
        return {**base, "state": "started", "run_id": run_id}

    async def _refused(self, engine: Engine, key: str, reason: str) -> None:
        """Alert without holding up the mailbox: the alert is raised in a task of its own
        (``submit_alert``), once per message across processes (its key)."""
        from batonflow.governance._alert_hook import submit_alert

        log.warning("mailbox %s: message %s refused: %s", self.name, key, reason)
        submit_alert(
            engine,
            kind="trigger.failed",
            summary=f"mailbox {self.name!r}: a message was refused: {reason}"[:500],
            key=f"trigger.failed:mailbox:{key}",
            workflow=self.target.workflow,
            details={"trigger": self.name, "message": key, "reason": reason},
        )

    async def _mark(self, client: Any, uid: int, *, refused: bool) -> None:
        settings = self.settings
        folder = settings.refused_to if refused else settings.move_to
        if settings.after == "move" and folder:
            if b"MOVE" in await self._call(client.capabilities):
                await self._call(client.move, [uid], folder)
            else:
                await self._call(client.copy, [uid], folder)
                await self._call(client.delete_messages, [uid])
                await self._call(client.uid_expunge, [uid])
            return
        flag = "$BatonflowRefused" if refused else settings.flag
        await self._call(client.add_flags, [uid], [flag])

    # -- the connection -------------------------------------------------------------------------
    async def _connected(self, engine: Engine) -> Any:
        if self._client is not None:
            return self._client
        password = await self.settings.auth.secret(engine.clock.now())
        self._client = await self._call(self._connect, password)
        return self._client

    def _connect(self, secret: str) -> Any:
        from imapclient import IMAPClient  # type: ignore[import-untyped]  # no stubs shipped

        settings = self.settings
        context = ssl.create_default_context()
        client = IMAPClient(
            settings.host, port=settings.port, ssl=settings.tls == "tls",
            ssl_context=context if settings.tls == "tls" else None, timeout=settings.timeout,
        )  # fmt: skip
        try:
            if settings.tls == "starttls":
                client.starttls(context)
            if self.settings.auth.oauth2 is not None:
                client.oauth2_login(settings.username, secret)
            else:
                client.login(settings.username, secret)
        except BaseException:
            _quietly(client.logout)
            raise
        return client

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(RuntimeError):  # the threads are gone: the process ends
                await self._call(_quietly, client.logout)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, lambda: fn(*args))

    # -- state ----------------------------------------------------------------------------------
    async def _success(self, engine: Engine, handled: int, *, backlog: int) -> None:
        """Record a pass that reached the mailbox: at most once a minute when nothing
        changed (an idle mailbox still shows a recent last success)."""
        now = engine.clock.now()
        if not handled and backlog == self._backlog and now - self._saved < 60:
            return
        state = await self._state(engine)
        state.update(last_success=now, last_error=None, backlog=backlog)
        state["handled"] = int(state.get("handled", 0)) + handled
        await engine.store.put_record(MAIL_STATE, self.name, json.dumps(state), now)
        self._saved, self._backlog = now, backlog

    async def _record_error(self, engine: Engine, exc: BaseException) -> None:
        self._saved = float("-inf")  # the next success is recorded, clearing the error
        try:
            state = await self._state(engine)
            state.update(last_error=_describe(exc), last_error_at=engine.clock.now())
            await engine.store.put_record(MAIL_STATE, self.name, json.dumps(state),
                                          engine.clock.now())  # fmt: skip
        except Exception:
            log.exception("mailbox %s: could not record its failure", self.name)

    async def _state(self, engine: Engine) -> dict[str, Any]:
        data = await engine.store.get_record(MAIL_STATE, self.name)
        state: dict[str, Any] = json.loads(data) if data else {}
        return state

    async def status(self, store: Any, now: float) -> dict[str, Any]:
        data = await store.get_record(MAIL_STATE, self.name)
        state = json.loads(data) if data else {}
        from batonflow.triggers._schedule import iso

        return {
            "name": self.name,
            "kind": self.kind,
            "workflow": self.target.workflow,
            "when": f"mail in {self.settings.mailbox}",
            "overlap": "-",
            "state": "paused"
            if await store.get_record(PAUSED_RECORD, self.name) is not None
            else "failing"
            if state.get("last_error")
            else "active",
            "last_success": iso(state["last_success"]) if state.get("last_success") else None,
            "last_error": state.get("last_error"),
            "last_run": None,
            "backlog": state.get("backlog"),
            "missed": 0,
            "next": [],
        }


async def _transformed(expression: str, mail: dict[str, Any]) -> Any:
    """``expression`` (jq) applied to the mail input: the workflow's own input shape (under
    the expression budget, off the event loop)."""
    from batonflow.dsl._expr import Evaluator

    try:
        return await Evaluator().evaluate(expression, mail, instance="transform")
    except Exception as exc:
        raise MailRefused(f"the mailbox's transform failed on this message: {exc}") from None


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:1000]


def _quietly(fn: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):  # closing a connection that is already gone
        fn()


def parse_mailbox(entry: Mapping[str, Any], where: str) -> MailboxSettings:
    """``[triggers.mailboxes.NAME]``: host, port, tls, username, password_env or [oauth2],
    folder, after, move_to, flag, refused_to, idle, poll, replies, reply_topic."""
    from batonflow.triggers._mail_auth import parse_auth

    known = {
        "host", "port", "tls", "username", "password_env", "oauth2", "folder", "after",
        "move_to", "flag", "refused_to", "idle", "poll", "replies", "reply_topic", "batch",
        "lease", "timeout", "transform",
        "workflow", "document",
    }  # fmt: skip
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    for required in ("host", "username"):
        if not isinstance(entry.get(required), str) or not entry[required]:
            raise ConfigError(f"{where}.{required}: required (a string)")
    options = {k: entry[k] for k in known - {"password_env", "oauth2", "workflow", "document"}
               if k in entry}  # fmt: skip
    try:
        return MailboxSettings(auth=parse_auth(entry, where), **options)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
