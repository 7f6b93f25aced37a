"""Reading alerts and acknowledging them: the rules the API and the console both call.

An alert is the governance record ``kind="alert"`` the monitors write once per occurrence
(:mod:`batonflow.governance._alert_dispatch`). Acknowledging one marks it seen by a person
(``state: acknowledged``, ``by``, ``acknowledged_at``) with an ``alert.acknowledged`` audit
entry in the same transaction; an alert is acknowledged once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from batonflow.errors import InvalidTransition
from batonflow.governance._alert_dispatch import ALERT_RECORD
from batonflow.governance._identity import Identity, authorize
from batonflow.store import AuditEntry, Store

__all__ = ["AlertState", "acknowledge_alert", "list_alerts"]

ACKNOWLEDGED = "acknowledged"


@dataclass(frozen=True, slots=True)
class AlertState:
    """An alert as stored: ``state`` is ``raised``, ``sent``, ``failed`` or ``acknowledged``."""

    key: str
    kind: str | None
    state: str
    summary: str | None
    run_id: str | None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        return self.state != ACKNOWLEDGED

    @classmethod
    def of(cls, key: str, data: dict[str, Any]) -> AlertState:
        return cls(
            key, data.get("kind"), str(data.get("state", "raised")), data.get("summary"),
            data.get("run_id"), data,
        )  # fmt: skip


async def list_alerts(
    store: Store, reader: Identity, *, open_only: bool = False
) -> list[AlertState]:
    """Every alert (``open_only``: those not acknowledged yet), by key. Needs ``read``."""
    authorize(reader, "read")
    found = [AlertState.of(k, json.loads(t)) for k, t in await store.list_records(ALERT_RECORD)]
    return [a for a in found if a.is_open or not open_only]


async def acknowledge_alert(
    store: Store, key: str, actor: Identity, *, now: float
) -> AlertState | None:
    """Mark alert ``key`` seen by ``actor`` (``alert.acknowledge``: admin or operator); None
    when there is no such alert. InvalidTransition when it was acknowledged already."""
    authorize(actor, "alert.acknowledge")
    text = await store.get_record(ALERT_RECORD, key)
    if text is None:
        return None
    data = json.loads(text)
    if data.get("state") == ACKNOWLEDGED:
        raise InvalidTransition(f"alert {key!r} was acknowledged by {data.get('by')}")
    data = {**data, "state": ACKNOWLEDGED, "by": actor.name, "acknowledged_at": now}
    entry = AuditEntry(
        "alert.acknowledged", json.dumps({"alert": key}), run_id=data.get("run_id"),
        actor=actor.name,
    )  # fmt: skip
    await store.put_record(ALERT_RECORD, key, json.dumps(data), now, audit=[entry])
    return AlertState.of(key, data)
