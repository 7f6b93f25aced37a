"""Acknowledging an alert: the rule the API and the console share."""

from __future__ import annotations

import json

import pytest

import batonflow as bf
from batonflow.governance._alert_dispatch import ALERT_RECORD
from batonflow.governance._alert_state import acknowledge_alert, list_alerts
from batonflow.governance._identity import Identity
from batonflow.testing import FakeClock

OPERATOR = Identity("olga", roles=("operator",))
VIEWER = Identity("vera", roles=("viewer",))


async def test_an_alert_is_acknowledged_once_by_a_role_that_may(
    engine: bf.Engine, clock: FakeClock
) -> None:
    store = engine.store
    raised = {"kind": "run.faulted", "state": "sent", "summary": "run r1 faulted", "run_id": "r1"}
    await store.add_record(ALERT_RECORD, "run.faulted:r1", json.dumps(raised), clock.now())
    assert [a.key for a in await list_alerts(store, VIEWER, open_only=True)] == ["run.faulted:r1"]
    with pytest.raises(bf.AccessDenied):
        await acknowledge_alert(store, "run.faulted:r1", VIEWER, now=clock.now())
    assert await acknowledge_alert(store, "nope", OPERATOR, now=clock.now()) is None
    done = await acknowledge_alert(store, "run.faulted:r1", OPERATOR, now=clock.now())
    assert done is not None
    assert (done.state, done.data["by"]) == ("acknowledged", "olga")
    with pytest.raises(bf.InvalidTransition, match="acknowledged by olga"):
        await acknowledge_alert(store, "run.faulted:r1", OPERATOR, now=clock.now())
    assert await list_alerts(store, VIEWER, open_only=True) == []
    assert [a.state for a in await list_alerts(store, VIEWER)] == ["acknowledged"]
    entries = [e for e in await store.read_audit(limit=100) if e.kind == "alert.acknowledged"]
    assert [(e.actor, e.run_id) for e in entries] == [("olga", "r1")]
