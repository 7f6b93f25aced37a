"""Raising one alert: the store decides who raises it, then every channel is told.

Shared by the engine hook (:mod:`._alert_hook`, alerts at the moment a process sees the event)
and the monitor (:mod:`._alerts`, the safety net that looks at the store). Each occurrence is
raised once across any number of processes: its key is the key of a governance record
``kind="alert"`` written, together with the ``alert.raised`` audit entry, by an
insert-if-absent in one transaction *before* anything is sent; whoever finds the record already
there stays silent. Delivery outcomes update that record and add ``alert.sent`` or
``alert.failed`` entries. A channel that fails is retried with backoff on the injected clock,
then logged at ERROR and recorded; nothing in here raises.

Surviving a longer outage: while an alert is not delivered to every channel, a record
``kind="alert.pending"`` says which channels are left and when to try again. It is written
before the first delivery (so a process that dies mid-delivery leaves it behind, due
``STALE_AFTER`` later) and removed once every channel has it. The monitor
(:meth:`Dispatcher.retry_pending`) takes each due round by an insert-if-absent claim, so one
process makes it, with backoff between rounds, for ``MAX_ROUNDS`` rounds (a day and more).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from batonflow import _serde
from batonflow.core import Clock
from batonflow.errors import BatonflowError, ConfigError
from batonflow.governance._alert_channels import Alert, AlertChannel
from batonflow.store import AuditEntry, Store

__all__ = ["ACTOR", "ALERT_RECORD", "PENDING_RECORD", "Dispatcher"]

log = logging.getLogger("batonflow.alerts")

#: The governance record kind of alerts.
ALERT_RECORD = "alert"
#: Who raises alerts, in the audit trail.
ACTOR = "system:alerts"
#: Alerts some channel has not received yet, and the claims of their delivery rounds.
PENDING_RECORD = "alert.pending"
ROUND_CLAIM = "alert.round"
#: A first delivery not finished after this long was abandoned (its process died).
STALE_AFTER = 300.0
#: Rounds of redelivery before giving up: waits of 1, 2, 4 ... minutes, at most an hour.
MAX_ROUNDS = 30


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
            names = [channel.name for channel in self.channels]
            await self._pending(alert, names, 0, self.clock.now() + STALE_AFTER)
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

    async def deliver(
        self,
        alert: Alert,
        channels: Sequence[AlertChannel] | None = None,
        *,
        earlier: Sequence[Mapping[str, Any]] = (),
        round: int = 0,
    ) -> float | None:
        """Send ``alert`` through ``channels`` (default: all), record the outcomes (with the
        ``earlier`` ones of channels not tried again) and what is left after round ``round``;
        return when the next round is due (None: nothing is left)."""
        chosen = self.channels if channels is None else tuple(channels)
        outcomes = list(await asyncio.gather(*(self._send(ch, alert) for ch in chosen)))
        tried = {outcome["channel"] for outcome in outcomes}
        outcomes += [dict(o) for o in earlier if o.get("channel") not in tried]
        return await self._conclude(alert, outcomes, round)

    async def announce(self, alert: Alert) -> list[dict[str, Any]]:
        """Deliver ``alert`` through every channel without recording anything first: for an
        alert about the store itself, which cannot be written while it fails (so it may reach
        a channel once per process that sees the failure). Returns the outcomes, for
        :meth:`record_late` once the store works again."""
        log.warning("ALERT %s: %s", alert.kind, alert.summary)
        return list(await asyncio.gather(*(self._send(ch, alert) for ch in self.channels)))

    async def record_late(self, alert: Alert, outcomes: Sequence[Mapping[str, Any]]) -> bool:
        """Record an alert :meth:`announce` delivered (``alert.raised``, then its outcomes),
        and leave what a channel did not get to the monitor's rounds; False if the record was
        already there (nothing written). Raises what the store raises."""
        if not await self.claim(alert):
            return False
        await self._conclude(alert, [dict(o) for o in outcomes], 0)
        return True

    async def _conclude(
        self, alert: Alert, outcomes: list[dict[str, Any]], round: int
    ) -> float | None:
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
        left = [o["channel"] for o in outcomes if not o["ok"]]
        next_at = None
        if left and round >= MAX_ROUNDS:
            log.error("ALERT %s given up after %d rounds: %s", alert.key, round, alert.summary)
        elif left:
            next_at = self.clock.now() + min(60.0 * 2**round, 3600.0)
        await self._pending(alert, left, round, next_at)
        return next_at

    async def _pending(
        self, alert: Alert, channels: list[str], round: int, next_at: float | None
    ) -> None:
        """Record which channels still need ``alert`` and when to try (none: forget it)."""
        data = None
        if channels and next_at is not None:
            record = {"alert": alert.to_dict(), "channels": channels, "round": round}
            data = _serde.dumps_lenient({**record, "next_at": next_at})
        try:
            await self.store.put_record(PENDING_RECORD, alert.key, data, self.clock.now())
        except Exception:
            log.exception("could not record what is left to deliver of alert %s", alert.key)

    async def retry_pending(self) -> float | None:
        """Make every delivery round that is due and that no other process took; return when
        the next one falls due (None: nothing is left to deliver)."""
        now, due = self.clock.now(), None
        for key, data_json in await self.store.list_records(PENDING_RECORD):
            try:
                data = json.loads(data_json)
                alert, next_at, round = _alert(data["alert"]), float(data["next_at"]), data["round"]
            except (ValueError, KeyError, TypeError) as exc:
                log.error("pending alert %r is unreadable (%s); dropping it", key, exc)
                await self.store.put_record(PENDING_RECORD, key, None, now)
                continue
            if next_at > now:
                due = next_at if due is None else min(due, next_at)
                continue
            if not await self.store.add_record(ROUND_CLAIM, f"{key}#{round}", data_json, now):
                continue  # another process makes this round
            channels = [c for c in self.channels if c.name in data["channels"]] or self.channels
            earlier = await self._outcomes(key)
            log.warning("ALERT %s: delivering again (round %d)", key, round + 1)
            after = await self.deliver(alert, channels, earlier=earlier, round=round + 1)
            if after is not None:
                due = after if due is None else min(due, after)
        return due

    async def _outcomes(self, key: str) -> list[dict[str, Any]]:
        data_json = await self.store.get_record(ALERT_RECORD, key)
        try:
            deliveries = json.loads(data_json).get("deliveries", []) if data_json else []
        except ValueError:
            return []
        return [d for d in deliveries if isinstance(d, dict)]

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


def _alert(data: Mapping[str, Any]) -> Alert:
    """An alert from its ``to_dict`` form."""
    at = dt.datetime.fromisoformat(str(data["at"]).replace("Z", "+00:00")).timestamp()
    return Alert(
        data["kind"],
        data.get("run_id"),
        data.get("workflow"),
        data["summary"],
        at,
        data["key"],
        dict(data.get("details") or {}),
    )


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}…"
