"""Webhook deliveries acted upon in-process on a real engine (SQLite and PostgreSQL) with a
fake clock: signatures and rotation, timestamp tolerance, replay, schema, refusals audited
within a budget, the alert on a burst of bad signatures, pause. The same over HTTP against a
real `batonflow serve`: test_webhooks_serve.py."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

import batonflow as bf
from batonflow.dsl import DslRuntime, load_document
from batonflow.errors import ConfigError
from batonflow.governance._alert_channels import Alert
from batonflow.governance._alert_hook import AlertHook
from batonflow.server._refusals import Refusals
from batonflow.testing import FakeClock
from batonflow.triggers import Webhooks, load_schedules
from batonflow.triggers._control import pause, resume
from batonflow.triggers._scheduler import run_id_for
from batonflow.triggers._webhook import (
    HOOK_RECORD,
    BodyTooLarge,
    HookMisconfigured,
    HookNotFound,
    HookPaused,
    InputRefused,
    SignatureRefused,
    UnsupportedMedia,
    WebhookSettings,
)
from conftest import EngineFactory

DOCUMENT = """
document: {dsl: '1.0.3', namespace: office, name: intake, version: '1.0.0'}
input:
  schema:
    format: json
    document:
      type: object
      required: [client]
      properties:
        client: {type: object, required: [email], properties: {email: {type: string}}}
metadata:
  batonflow:
    webhook: {name: intake, secret_env: [HOOK_SECRET, HOOK_SECRET_OLD], max_body: 2000}
do:
  - note:
      set:
        email: ${ .client.email }
"""
NOW = dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.UTC).timestamp()


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def signed(
    secret: str, body: bytes, at: float, message_id: str = "msg_1", **extra: str
) -> dict[str, str]:
    """The headers a Standard Webhooks sender puts on ``body`` (its reference library)."""
    when = dt.datetime.fromtimestamp(at, dt.UTC)
    signature = Webhook(secret).sign(msg_id=message_id, timestamp=when, data=body.decode())
    return {"webhook-id": message_id, "webhook-timestamp": str(int(at)),
            "webhook-signature": signature, "content-type": "application/json",
            **extra}  # fmt: skip


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    value = new_secret()
    monkeypatch.setenv("HOOK_SECRET", value)
    monkeypatch.delenv("HOOK_SECRET_OLD", raising=False)
    return value


class Recorded:
    """An alert channel that keeps what it is sent."""

    name = "recorded"

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    async def send(self, alert: Alert) -> None:
        self.alerts.append(alert)


@pytest.fixture
def channel() -> Recorded:
    return Recorded()


@asynccontextmanager
async def opened(
    make_engine: EngineFactory, channel: Recorded
) -> AsyncIterator[tuple[Webhooks, FakeClock]]:
    """The document's hook on an engine whose alerts go to ``channel`` (delivered by the time
    the engine is closed)."""
    clock = FakeClock(NOW)
    runtime = DslRuntime()
    document = dict(load_document("intake.yaml", text=DOCUMENT).raw)
    triggers = load_schedules({}, "batonflow.toml", runtime=runtime, documents=[document])

    async def nothing() -> None:
        return None

    alerts = AlertHook(lambda engine: ([channel], nothing))
    async with make_engine(clock=clock, workflows=[runtime.workflow], hooks=[alerts]) as engine:
        refusals = Refusals(engine.store, clock.now, burst=3, kind="trigger.webhook.refused")
        yield Webhooks.of(engine, triggers, refusals), clock
    await runtime.aclose()


@pytest.fixture
async def hooks(
    make_engine: EngineFactory, secret: str, channel: Recorded
) -> AsyncIterator[tuple[Webhooks, FakeClock]]:
    async with opened(make_engine, channel) as opened_hooks:
        yield opened_hooks


async def audit(hooks: Webhooks) -> list[tuple[str, dict[str, Any]]]:
    entries = await hooks.engine.store.read_audit()
    return [(e.kind, json.loads(e.data_json)) for e in entries if "webhook" in e.kind]


BODY = json.dumps({"client": {"email": "ann@example.org"}}).encode()


async def test_a_signed_delivery_starts_one_run_and_a_replay_answers_the_same(
    hooks: tuple[Webhooks, FakeClock], secret: str
) -> None:
    webhooks, clock = hooks
    status, answer = await webhooks.deliver("intake", signed(secret, BODY, NOW), BODY)
    assert status == 202
    assert answer["workflow"] == "office/intake"
    assert answer["webhook_id"] == "msg_1"
    await clock.advance(60)  # the sender retries: same id, signed anew
    again = await webhooks.deliver("intake", signed(secret, BODY, NOW + 60), BODY)
    assert again == (200, answer)
    await webhooks.engine.settle()
    (run,) = await webhooks.engine.store.list_runs(workflow="office/intake")
    assert run.id == answer["run_id"]
    assert json.loads(run.output_json or "null") == {"email": "ann@example.org"}
    kinds = [kind for kind, _ in await audit(webhooks)]
    assert kinds == ["trigger.webhook.accepted", "trigger.webhook.replayed"]


async def test_old_and_new_secrets_are_both_accepted_while_rotating(
    hooks: tuple[Webhooks, FakeClock], secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    webhooks, _ = hooks
    newer = new_secret()
    monkeypatch.setenv("HOOK_SECRET", newer)  # rotation: the old one moves aside
    monkeypatch.setenv("HOOK_SECRET_OLD", secret)
    old = await webhooks.deliver("intake", signed(secret, BODY, NOW, "m-old"), BODY)
    new = await webhooks.deliver("intake", signed(newer, BODY, NOW, "m-new"), BODY)
    assert old[0] == new[0] == 202
    assert old[1]["run_id"] != new[1]["run_id"]
    monkeypatch.delenv("HOOK_SECRET_OLD")  # rotation over: the old secret is refused
    with pytest.raises(SignatureRefused, match="no signature matches"):
        await webhooks.deliver("intake", signed(secret, BODY, NOW, "m-late"), BODY)
    # a sender signing with both during its own rotation is accepted by either
    both = signed(newer, BODY, NOW, "m-both")
    both["webhook-signature"] = signed(secret, BODY, NOW, "m-both")["webhook-signature"] + (
        " " + both["webhook-signature"]
    )
    assert (await webhooks.deliver("intake", both, BODY))[0] == 202


@pytest.mark.parametrize(
    ("change", "refusal", "reason"),
    [
        ({"webhook-signature": "v1,AAAA"}, SignatureRefused, "no signature matches"),
        ({"webhook-timestamp": str(int(NOW - 301))}, SignatureRefused, "tolerance 300"),
        ({"webhook-timestamp": str(int(NOW + 301))}, SignatureRefused, "tolerance 300"),
        ({"webhook-signature": ""}, SignatureRefused, "needs the webhook-id"),
        ({"content-type": "text/plain"}, UnsupportedMedia, "'text/plain'"),
    ],
)
async def test_bad_deliveries_are_refused_and_audited(
    hooks: tuple[Webhooks, FakeClock],
    secret: str,
    change: dict[str, str],
    refusal: type[Exception],
    reason: str,
) -> None:
    webhooks, _ = hooks
    headers = {**signed(secret, BODY, NOW), **change}
    with pytest.raises(refusal, match=reason):
        await webhooks.deliver("intake", headers, BODY)
    assert await webhooks.engine.store.list_runs(workflow="office/intake") == []
    ((kind, data),) = await audit(webhooks)
    assert kind == "trigger.webhook.refused"
    assert data["hook"] == "intake"
    assert data["reason"] == refusal.reason


async def test_a_signed_body_that_breaks_the_input_schema_names_the_path(
    hooks: tuple[Webhooks, FakeClock], secret: str
) -> None:
    webhooks, _ = hooks
    body = json.dumps({"client": {"email": 7}}).encode()
    with pytest.raises(InputRefused, match="at /client/email") as refused:
        await webhooks.deliver("intake", signed(secret, body, NOW), body)
    assert refused.value.extra["errors"][0]["location"] == "/client/email"
    large = json.dumps({"client": {"email": "x" * 3000}}).encode()
    with pytest.raises(BodyTooLarge):
        await webhooks.deliver("intake", signed(secret, large, NOW), large)
    with pytest.raises(HookNotFound):
        await webhooks.deliver("nope", signed(secret, BODY, NOW), BODY)
    assert await webhooks.engine.store.list_runs(workflow="office/intake") == []
    reasons = [d["reason"] for _, d in await audit(webhooks)]
    assert reasons == ["invalid input", "too large", "unknown hook"]


async def test_a_burst_of_bad_signatures_alerts_once_and_the_trail_stays_bounded(
    make_engine: EngineFactory, secret: str, channel: Recorded
) -> None:
    async with opened(make_engine, channel) as (webhooks, clock):
        headers = {**signed(secret, BODY, NOW), "webhook-signature": "v1,AAAA"}
        for _ in range(12):
            with pytest.raises(SignatureRefused):
                await webhooks.deliver("intake", headers, BODY)
        assert len(await audit(webhooks)) == 3  # the budget (burst=3); the rest are counted
        await clock.advance(61)
        await webhooks.refusals.flush()  # type: ignore[attr-defined]
        last = (await audit(webhooks))[-1][1]
        (status,) = [await h.status(webhooks.engine.store, clock.now())
                     for h in webhooks.hooks.values()]  # fmt: skip
    assert last["suppressed"] == 9
    assert status["state"] == "failing"
    assert status["failures"] == 3
    (alert,) = channel.alerts  # the fifth failure raised it; the next ones did not again
    assert alert.kind == "trigger.failed"
    assert alert.summary == "webhook 'intake': 5 signature failures in 60 s"


async def test_a_paused_hook_refuses_until_resumed(
    hooks: tuple[Webhooks, FakeClock], secret: str
) -> None:
    webhooks, clock = hooks
    store = webhooks.engine.store
    await pause(store, "intake", by="ops", now=clock.now())
    with pytest.raises(HookPaused):
        await webhooks.deliver("intake", signed(secret, BODY, NOW), BODY)
    await resume(store, "intake", by="ops", now=clock.now())
    assert (await webhooks.deliver("intake", signed(secret, BODY, NOW), BODY))[0] == 202
    (status,) = [await h.status(store, clock.now()) for h in webhooks.hooks.values()]
    assert status["state"] == "active"
    assert status["last_run"]


def test_configuration_mistakes_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))

    def load(entry: dict[str, Any]) -> Any:
        return load_schedules({"triggers": {"webhooks": {"in": entry}}}, "batonflow.toml")

    target = {"workflow": "trigger_flows:report"}
    with pytest.raises(ConfigError, match=r"\[triggers.webhooks.in\]: name the hook's secrets"):
        load(target)
    with pytest.raises(ConfigError, match=r"unknown key.*secret$"):
        load({**target, "secret": "x"})
    with pytest.raises(ConfigError, match="secret_env: expected a variable name"):
        load({**target, "secret_env": 3})
    (unsigned,) = load({**target, "signature": "none"})
    assert unsigned.settings.signature == "none"
    key_file = tmp_path / "hook.secret"
    key_file.write_text(new_secret() + "\n")
    os.chmod(key_file, 0o644)
    with pytest.raises(ConfigError, match="can be read by other accounts"):
        WebhookSettings(secret_file=str(key_file)).secrets()
    os.chmod(key_file, 0o600)
    assert len(WebhookSettings(secret_file=str(key_file)).secrets()) == 1


async def test_a_claim_whose_process_died_before_the_start_is_repaired_by_the_retry(
    hooks: tuple[Webhooks, FakeClock], secret: str
) -> None:
    webhooks, clock = hooks
    store = webhooks.engine.store
    key = "hook:intake:msg_9"  # what a process wrote just before it was killed
    claim = {"hook": "intake", "webhook_id": "msg_9", "run_id": run_id_for(key),
             "workflow": "office/intake"}  # fmt: skip
    await store.add_record(HOOK_RECORD, key, json.dumps(claim), clock.now())
    status, answer = await webhooks.deliver("intake", signed(secret, BODY, NOW, "msg_9"), BODY)
    assert (status, answer) == (200, claim)
    await webhooks.engine.settle()
    run = await webhooks.engine.get_run(claim["run_id"])
    assert run.status is bf.RunStatus.COMPLETED
    assert len(await store.list_runs(workflow="office/intake")) == 1


async def test_a_hook_without_its_secret_refuses_with_503_and_alerts_the_operator(
    make_engine: EngineFactory, secret: str, channel: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOOK_SECRET")  # the deployment lost its secret
    async with opened(make_engine, channel) as (webhooks, _):
        for _ in range(2):
            with pytest.raises(HookMisconfigured) as refused:
                await webhooks.deliver("intake", signed(secret, BODY, NOW), BODY)
            assert "HOOK_SECRET" not in str(refused.value)  # the sender learns nothing of it
            assert refused.value.extra == {}
        ((kind, data), _again) = await audit(webhooks)
    assert (kind, data["reason"]) == ("trigger.webhook.refused", "misconfigured")
    (alert,) = channel.alerts
    assert "no webhook secret is set ($HOOK_SECRET, $HOOK_SECRET_OLD)" in alert.summary
