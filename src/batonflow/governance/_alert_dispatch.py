"""Raising one alert: the store decides who raises it, then every channel is told.

Shared by the engine hook (:mod:`._alert_hook`, alerts at the moment a process sees the event)
and the monitor (:mod:`._alerts`, the safety net that looks at the store). Each occurrence is
raised once across any number of processes: its key is the key of a governance record
``kind="alert"`` written, together with the ``alert.raised`` audit entry, by an
insert-if-absent in one transaction *before* anything is sent; whoever finds the record already
there stays silent. Delivery outcomes update that record and add ``alert.sent`` or
``alert.failed`` entries. A channel that fails is retried with backoff on the injected clock,
then logged at ERROR and recorded; nothing in here raises.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from typing import Any

from batonflow import _serde
from batonflow.core import Clock
from batonflow.errors import BatonflowError, ConfigError
from batonflow.governance._alert_channels import Alert, AlertChannel
from batonflow.store import AuditEntry, Store

__all__ = ["ACTOR", "ALERT_RECORD", "Dispatcher"]

log = logging.getLogger("batonflow.alerts")

#: The governance record kind of alerts.
ALERT_RECORD = "alert"
#: Who raises alerts, in the audit trail.
ACTOR = "system:alerts"


class Dispatcher:
    """Claims alerts in ``store`` and delivers them through ``channels``: a channel failing
    ``attempts`` times in a row (waiting ``retry_delay``, doubling, on ``clock`` between tries)
    is given up on for that alert."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        channels: Sequence[AlertChannel],
        *,
        attempts: int = 4,
        retry_delay: float = 1.0,
    ) -> None:
        if attempts < 1:
            raise ConfigError("alert delivery attempts: expected at least 1")
        self.store, self.clock = store, clock
        self.channels = tuple(channels)
        self._attempts, self._retry_delay = attempts, retry_delay
        #: Names this process in the records it writes (host, process, instance).
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    async def raise_(self, alert: Alert) -> bool | None:
        """Claim ``alert`` and, when this process is the one to raise it, deliver it; True if
        raised here, False if someone else had, None if the store could not be written (the
        caller may try again later)."""
        try:
            claimed = await self.claim(alert)
        except Exception:
            log.exception("could not record alert %s; it will be retried", alert.key)
            return None
        if claimed:
            log.warning("ALERT %s: %s", alert.kind, alert.summary)
            await self.deliver(alert)
        return claimed

    async def claim(self, alert: Alert) -> bool:
        """Write the alert record and its ``alert.raised`` entry unless the record exists;
        True when this process is the one that raised it."""
        names = [channel.name for channel in self.channels]
        data = {**alert.to_dict(), "state": "raised", "monitor": self.id, "channels": names}
        data_json = _serde.dumps_lenient(data)
        entry = AuditEntry("alert.raised", data_json, run_id=alert.run_id, actor=ACTOR)
        now = self.clock.now()
        return await self.store.add_record(ALERT_RECORD, alert.key, data_json, now, audit=[entry])

    async def deliver(self, alert: Alert) -> None:
        outcomes = await asyncio.gather(*(self._send(ch, alert) for ch in self.channels))
        ok = [outcome["ok"] for outcome in outcomes]
        state = "sent" if all(ok) else "failed" if not any(ok) else "partly sent"
        data = {**alert.to_dict(), "state": state, "deliveries": outcomes}
        entries = [
            AuditEntry(
                "alert.sent" if outcome["ok"] else "alert.failed",
                _serde.dumps_lenient({"key": alert.key, **outcome}),
                run_id=alert.run_id,
                actor=ACTOR,
            )
            for outcome in outcomes
        ]
        try:
            await self.store.put_record(
                ALERT_RECORD, alert.key, _serde.dumps_lenient(data), self.clock.now(), audit=entries
            )
        except Exception:
            log.exception("could not record the delivery of alert %s (%s)", alert.key, state)

    async def _send(self, channel: AlertChannel, alert: Alert) -> dict[str, Any]:
        delay = self._retry_delay
        for attempt in range(1, self._attempts + 1):
            try:
                await channel.send(alert)
            except Exception as exc:
                final = isinstance(exc, BatonflowError) and not exc.retryable
                if final or attempt == self._attempts:
                    log.error(
                        "ALERT NOT DELIVERED via %s after %d attempt(s): %s (alert %s: %s)",
                        channel.name,
                        attempt,
                        exc,
                        alert.key,
                        alert.summary,
                    )
                    error = clip(str(exc), 500)
                    return {
                        "channel": channel.name,
                        "ok": False,
                        "attempts": attempt,
                        "error": error,
                    }
                log.warning("alert %s via %s failed (%s); retrying", alert.key, channel.name, exc)
                await self.clock.sleep(delay)
                delay *= 2
            else:
                return {"channel": channel.name, "ok": True, "attempts": attempt}
        raise AssertionError("unreachable")  # pragma: no cover


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}…"
