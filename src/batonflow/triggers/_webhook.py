"""Webhooks: ``POST /hooks/{name}`` starts the hook's workflow, once per ``webhook-id``.

A delivery is checked in this order, and each refusal names its reason:

1. the hook exists (404) and is not paused (503: the sender retries later);
2. the body fits ``max_body`` (413) and its type is JSON or a CloudEvent (415);
3. its signature, per the Standard Webhooks specification (``webhook-id``,
   ``webhook-timestamp``, ``webhook-signature``; HMAC-SHA256 computed by its reference library
   ``standardwebhooks``), matches one of the hook's secrets -- several are valid at once while
   a secret is rotated -- and its timestamp is within ``tolerance`` of the engine's clock (401);
   a hook configured with ``signature = "none"`` skips this, and ``triggers list`` says so;
4. the run input (the JSON body, or a CloudEvent's ``data``) matches the workflow document's
   ``input.schema`` (400, with the failing JSON path).

Then ``webhook-id`` (a CloudEvent without one: its ``source`` and ``id``) is claimed in the
store (a record ``kind="trigger.webhook"``, insert-if-absent, with its audit entry) and the run
is started under an id derived from it. A replay -- the same id again, from any process --
answers with the same run and body and starts nothing; a process that died between the claim
and the start is repaired by the sender's retry (the start is idempotent).

Every refusal is audited (``trigger.webhook.refused``) through a rate-limited recorder, so a
flood cannot fill the trail; signature failures beyond ``alert_after`` within
``alert_window`` seconds raise an alert at once (``trigger.failed``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hmac
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from batonflow import _serde
from batonflow.core import Engine
from batonflow.errors import BatonflowError, ConfigError
from batonflow.store import AuditEntry, Store
from batonflow.triggers._scheduler import PAUSED_RECORD, Target, run_id_for
from batonflow.triggers._webhook_settings import (
    WebhookSettings,
    parse_webhook,
    publishing_target,
)

__all__ = [
    "HOOK_RECORD",
    "BodyTooLarge",
    "HookNotFound",
    "HookMisconfigured",
    "HookPaused",
    "InputRefused",
    "SignatureRefused",
    "UnsupportedMedia",
    "WebhookRefused",
    "WebhookSettings",
    "WebhookTrigger",
    "Webhooks",
    "parse_webhook",
    "publishing_target",
]

log = logging.getLogger("batonflow.triggers")

HOOK_RECORD = "trigger.webhook"
HOOK_STATE = "trigger.webhook.state"
ACTOR = "system:webhooks"
JSON_TYPES = ("application/json", "application/cloudevents+json")


# -- refusals (their HTTP status comes from batonflow._problems) ---------------------------------
class WebhookRefused(BatonflowError):
    """A delivery that starts nothing; ``reason`` is its short, audited cause."""

    reason = "refused"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.extra = extra


class HookNotFound(WebhookRefused):
    reason = "unknown hook"


class HookPaused(WebhookRefused):
    reason = "paused"
    retryable = True


class BodyTooLarge(WebhookRefused):
    reason = "too large"


class UnsupportedMedia(WebhookRefused):
    reason = "unsupported media type"


class SignatureRefused(WebhookRefused):
    reason = "bad signature"


class HookMisconfigured(WebhookRefused):
    """The hook cannot check signatures (no secret set, or one that is not a Standard
    Webhooks secret): the sender is told to retry, the operator is alerted."""

    reason = "misconfigured"
    retryable = True


class InputRefused(WebhookRefused):
    reason = "invalid input"


class Recorder(Protocol):
    """Writes refusals to the audit trail within a budget (``server._refusals.Refusals``)."""

    async def record(self, data: dict[str, Any], actor: str | None) -> bool: ...


# -- the trigger ----------------------------------------------------------------------------------
class WebhookTrigger:
    """A hook: nothing to poll (deliveries come through :class:`Webhooks`); hosted beside the
    other triggers so ``triggers list``, pause and resume treat it alike."""

    kind = "webhook"

    def __init__(self, name: str, settings: WebhookSettings, target: Target) -> None:
        self.name, self.settings, self.target = name, settings, target
        self._failures: deque[float] = deque()

    async def run(self, engine: Engine, on_error: Callable[[str, str], Awaitable[None]]) -> None:
        await asyncio.Event().wait()  # until cancelled: the HTTP route does the work

    async def check(self, engine: Engine) -> list[dict[str, Any]]:
        return []

    async def close(self) -> None:
        return None

    async def status(self, store: Store, now: float) -> dict[str, Any]:
        from batonflow.triggers._schedule import iso

        state = json.loads(await store.get_record(HOOK_STATE, self.name) or "{}")
        unsigned = self.settings.signature == "none"
        paused = await store.get_record(PAUSED_RECORD, self.name) is not None
        failing = (state.get("last_refusal_at") or 0) > (state.get("last_success") or 0)
        return {
            "name": self.name,
            "kind": self.kind,
            "workflow": self.target.workflow,
            "when": f"POST /hooks/{self.name}" + (" (UNSIGNED)" if unsigned else ""),
            "overlap": "-",
            "state": "paused" if paused else "failing" if failing else "active",
            "unsigned": unsigned,
            "last_success": iso(state["last_success"]) if state.get("last_success") else None,
            "last_error": state.get("last_refusal"),
            "last_run": state.get("last_run"),
            "backlog": 0,
            "failures": int(state.get("refused", 0)),
            "missed": 0,
            "next": [],
        }

    # -- one delivery ---------------------------------------------------------------------------
    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> str | None:
        """The delivery's ``webhook-id`` once its signature and timestamp are good
        (SignatureRefused otherwise); None for an unsigned hook without one."""
        message_id = headers.get("webhook-id")
        if self.settings.signature == "none":
            return message_id
        stamp, signatures = headers.get("webhook-timestamp"), headers.get("webhook-signature")
        if not (message_id and stamp and signatures):
            raise SignatureRefused(
                "a signed hook needs the webhook-id, webhook-timestamp and webhook-signature"
                " headers (Standard Webhooks)"
            )
        try:
            sent = int(stamp)
        except ValueError:
            raise SignatureRefused(f"webhook-timestamp {stamp[:40]!r}: not Unix seconds") from None
        if abs(now - sent) > self.settings.tolerance:
            raise SignatureRefused(
                f"webhook-timestamp is {int(now - sent)} s from this server's clock (tolerance"
                f" {self.settings.tolerance:g} s): a stale or replayed delivery",
                stale=True,
            )
        given = _v1_signatures(signatures)
        at = dt.datetime.fromtimestamp(sent, dt.UTC)
        try:
            for secret in self.settings.secrets():
                expected = _signature(secret, message_id, at, body)
                if any(hmac.compare_digest(expected, g) for g in given):
                    return message_id
        except ConfigError as exc:  # the detail is for the operator (the alert), not the sender
            raise HookMisconfigured(
                f"webhook {self.name!r} cannot check signatures now; its operator is alerted",
                problem=str(exc),
            ) from None
        raise SignatureRefused("no signature matches a secret of this hook")

    def count_failure(self, now: float) -> int:
        """Signature failures within the alert window, this one included."""
        window = self.settings.alert_window
        while self._failures and self._failures[0] <= now - window:
            self._failures.popleft()
        self._failures.append(now)
        return len(self._failures)


def _signature(secret: str, message_id: str, at: dt.datetime, body: bytes) -> bytes:
    from standardwebhooks.webhooks import Webhook

    try:
        signed = Webhook(secret).sign(msg_id=message_id, timestamp=at, data=body)
    except (binascii.Error, ValueError, RuntimeError):
        raise ConfigError(
            "a webhook secret is not a Standard Webhooks secret (whsec_ and base64)"
        ) from None
    return base64.b64decode(signed.partition(",")[2])


def _v1_signatures(header: str) -> list[bytes]:
    found: list[bytes] = []
    for item in header.split():
        version, _, value = item.partition(",")
        if version == "v1":
            try:
                found.append(base64.b64decode(value, validate=True))
            except binascii.Error:
                continue
    return found


@dataclass
class Webhooks:
    """The hooks one ``serve`` process answers, by name; ``refusals`` audits refusals within
    a budget."""

    engine: Engine
    hooks: dict[str, WebhookTrigger]
    refusals: Recorder
    _sent: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, engine: Engine, triggers: Sequence[Any], refusals: Recorder) -> Webhooks:
        return cls(engine, {t.name: t for t in triggers if t.kind == "webhook"}, refusals)

    def adopt(self, trigger: Any) -> None:
        """A trigger found since the start (a deployed document's hook) is served too."""
        if trigger.kind == "webhook":
            self.hooks[trigger.name] = trigger

    def limit(self, name: str) -> int | None:
        hook = self.hooks.get(name)
        return hook.settings.max_body if hook is not None else None

    async def deliver(
        self, name: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        """Act on one delivery to hook ``name``: (202, the answer) when a run was started,
        (200, the same answer) for a replay; a WebhookRefused, audited, otherwise."""
        hook = self.hooks.get(name)
        try:
            if hook is None:
                raise HookNotFound(f"no webhook named {name!r} is served here")
            return await self._deliver(hook, headers, body)
        except WebhookRefused as refused:
            await self._refused(name, hook, headers, refused)
            raise

    async def _deliver(
        self, hook: WebhookTrigger, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        store, now = self.engine.store, self.engine.clock.now()
        if await store.get_record(PAUSED_RECORD, hook.name) is not None:
            raise HookPaused(f"webhook {hook.name!r} is paused; deliver it again later")
        if len(body) > hook.settings.max_body:
            raise BodyTooLarge(f"the body is larger than {hook.settings.max_body} bytes")
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in JSON_TYPES and not kind.endswith("+json"):
            raise UnsupportedMedia(
                f"content type {kind or '(none)'!r}: expected application/json or"
                " application/cloudevents+json (structured), or JSON data with ce-* headers"
                " (binary)"
            )
        message_id = hook.verify(headers, body, now)
        input, event = _input(headers, body, kind)
        if hook.target.input_schema is not None:
            from batonflow.dsl._expr import Evaluator
            from batonflow.dsl._schemas import first_error

            found = await first_error(
                hook.target.input_schema, input, "/input/schema", "input", Evaluator()
            )
            if found is not None:
                path, message = found
                raise InputRefused(
                    f"the body does not match the workflow's input schema at {path}: {message}",
                    errors=[{"location": path, "message": message}],
                )
        if hook.settings.publish and event is None:
            raise InputRefused(
                "this hook publishes CloudEvents: send one (structured, or binary with ce-*"
                " headers)"
            )
        if message_id is None and event is not None:
            message_id = f"ce:{event['source']}:{event['id']}"
        if message_id is None:
            raise InputRefused("an unsigned delivery still needs a webhook-id header (its key)")
        key = f"hook:{hook.name}:{message_id}"
        if hook.settings.publish:
            assert event is not None
            return await self._publish(hook, key, message_id, event)
        answer = {"hook": hook.name, "webhook_id": message_id, "run_id": run_id_for(key),
                  "workflow": hook.target.workflow}  # fmt: skip
        data = _serde.dumps_lenient({**answer, "at": now, "cloudevent": event is not None})
        accepted = AuditEntry("trigger.webhook.accepted", data, run_id=answer["run_id"],
                              actor=ACTOR)  # fmt: skip
        first = await store.add_record(HOOK_RECORD, key, data, now, audit=[accepted])
        if not first:
            stored = json.loads(await store.get_record(HOOK_RECORD, key) or "{}")
            answer = {k: stored.get(k, v) for k, v in answer.items()}
            replayed = AuditEntry("trigger.webhook.replayed", data, run_id=answer["run_id"],
                                  actor=ACTOR)  # fmt: skip
            await store.append_audit([replayed], now)
        # a replay starts the run only when there is none: the process that claimed the id
        # died before starting it (the start is idempotent if two replays race to do it)
        if first or await store.get_run(answer["run_id"]) is None:
            await hook.target.start(self.engine, input, answer["run_id"], key)
            self.engine.poke()
        await self._state(hook.name, now, success=answer["run_id"])
        return (202 if first else 200), answer

    async def _publish(
        self, hook: WebhookTrigger, key: str, message_id: str, event: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """Publish ``event`` once per ``webhook-id``: claimed first, marked published after
        (a replay publishes an event whose process died before it could)."""
        from batonflow.dsl._events import publish

        store, now = self.engine.store, self.engine.clock.now()
        answer = {"hook": hook.name, "webhook_id": message_id, "event_id": event["id"],
                  "type": event["type"]}  # fmt: skip
        data = _serde.dumps_lenient({**answer, "at": now})
        accepted = AuditEntry("trigger.webhook.accepted", data, actor=ACTOR)
        first = await store.add_record(HOOK_RECORD, key, data, now, audit=[accepted])
        stored = json.loads(await store.get_record(HOOK_RECORD, key) or "{}")
        if not first:
            answer = {k: stored.get(k, v) for k, v in answer.items()}
            replayed = AuditEntry("trigger.webhook.replayed", data, actor=ACTOR)
            await store.append_audit([replayed], now)
        if not stored.get("published"):
            await publish(store, event, now, actor=ACTOR)
            await store.put_record(HOOK_RECORD, key, json.dumps({**stored, "published": True}), now)
            self.engine.poke()
        await self._state(hook.name, now, success="-")
        return (202 if first else 200), answer

    async def _refused(
        self,
        name: str,
        hook: WebhookTrigger | None,
        headers: Mapping[str, str],
        refused: WebhookRefused,
    ) -> None:
        now = self.engine.clock.now()
        data = {"hook": name, "reason": refused.reason, "detail": str(refused)[:500],
                "webhook_id": (headers.get("webhook-id") or "")[:200] or None}  # fmt: skip
        log.info("webhook %s refused: %s", name, refused)
        try:
            written = await self.refusals.record(data, ACTOR)
            if written and hook is not None:
                await self._state(name, now, refusal=f"{refused.reason}: {refused}"[:300])
        except Exception:  # the refusal stands; the store's trouble is reported elsewhere
            log.warning("webhook %s: could not record a refusal", name, exc_info=True)
        if isinstance(refused, HookMisconfigured) and hook is not None:
            problem = str(refused.extra.pop("problem", refused))
            self._alert(hook, f"trigger.failed:webhook:{hook.name}:config:{int(now // 3600)}",
                        f"webhook {hook.name!r} cannot check signatures: {problem}",
                        problem)  # fmt: skip
        if isinstance(refused, SignatureRefused) and hook is not None:
            count = hook.count_failure(now)
            window = hook.settings.alert_window
            if count >= hook.settings.alert_after:
                key = f"trigger.failed:webhook:{hook.name}:signature:{int(now // window)}"
                summary = f"webhook {hook.name!r}: {count} signature failures in {window:g} s"
                self._alert(hook, key, summary, str(refused))

    def _alert(self, hook: WebhookTrigger, key: str, summary: str, detail: str) -> None:
        from batonflow.governance._alert_hook import submit_alert

        if key in self._sent:  # once per key here; the alert record dedups across processes
            return
        if len(self._sent) > 1000:
            self._sent.clear()
        self._sent.add(key)
        submit_alert(
            self.engine,
            kind="trigger.failed",
            summary=summary[:500],
            key=key,
            workflow=hook.target.workflow,
            details={"trigger": hook.name, "last": detail[:500]},
        )

    async def _state(
        self, name: str, now: float, *, success: str | None = None, refusal: str | None = None
    ) -> None:
        store = self.engine.store
        state = json.loads(await store.get_record(HOOK_STATE, name) or "{}")
        if success is not None:
            state.update(last_success=now, last_run=success,
                         accepted=int(state.get("accepted", 0)) + 1)  # fmt: skip
        if refusal is not None:
            state.update(last_refusal=refusal, last_refusal_at=now,
                         refused=int(state.get("refused", 0)) + 1)  # fmt: skip
        await store.put_record(HOOK_STATE, name, json.dumps(state), now)


def _input(headers: Mapping[str, str], body: bytes, kind: str) -> tuple[Any, dict[str, Any] | None]:
    """The run input and, for a CloudEvent (structured or binary), the event."""
    from batonflow.dsl._events import parse_cloudevent

    binary = any(k.lower().startswith("ce-") for k in headers)
    try:
        if kind == "application/cloudevents+json" or binary:
            event = parse_cloudevent(headers, body)
            return event.get("data"), event
        return json.loads(body), None
    except ConfigError as exc:
        raise InputRefused(str(exc)) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputRefused(f"the body is not valid JSON: {exc}") from None
